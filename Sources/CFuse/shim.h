#ifndef SANDBOX_CFUSE_SHIM_H
#define SANDBOX_CFUSE_SHIM_H
// 3.12 selects the loop-config API; Debian 12 ships libfuse 3.14.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

// fuse_session_loop_mt is a macro in fuse_lowlevel.h.
static inline int sandbox_fuse_session_loop_mt(struct fuse_session *session,
                                               struct fuse_loop_config *config) {
  return fuse_session_loop_mt(session, config);
}
#endif
