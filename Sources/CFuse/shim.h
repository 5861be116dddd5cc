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

// Capability and setattr bits are shift expressions Swift may not import; these are plain constants.
static const unsigned SANDBOX_FUSE_CAP_ASYNC_READ = FUSE_CAP_ASYNC_READ;
static const unsigned SANDBOX_FUSE_CAP_ATOMIC_O_TRUNC = FUSE_CAP_ATOMIC_O_TRUNC;
static const unsigned SANDBOX_FUSE_CAP_SPLICE_WRITE = FUSE_CAP_SPLICE_WRITE;
static const unsigned SANDBOX_FUSE_CAP_SPLICE_MOVE = FUSE_CAP_SPLICE_MOVE;
static const unsigned SANDBOX_FUSE_CAP_SPLICE_READ = FUSE_CAP_SPLICE_READ;
static const unsigned SANDBOX_FUSE_CAP_READDIRPLUS = FUSE_CAP_READDIRPLUS;
static const unsigned SANDBOX_FUSE_CAP_READDIRPLUS_AUTO = FUSE_CAP_READDIRPLUS_AUTO;
static const unsigned SANDBOX_FUSE_CAP_WRITEBACK_CACHE = FUSE_CAP_WRITEBACK_CACHE;
static const unsigned SANDBOX_FUSE_CAP_PARALLEL_DIROPS = FUSE_CAP_PARALLEL_DIROPS;
static const unsigned SANDBOX_FUSE_CAP_AUTO_INVAL_DATA = FUSE_CAP_AUTO_INVAL_DATA;
static const unsigned SANDBOX_FUSE_CAP_POSIX_LOCKS = FUSE_CAP_POSIX_LOCKS;
static const unsigned SANDBOX_FUSE_CAP_FLOCK_LOCKS = FUSE_CAP_FLOCK_LOCKS;

static const int SANDBOX_FUSE_SET_ATTR_MODE = FUSE_SET_ATTR_MODE;
static const int SANDBOX_FUSE_SET_ATTR_UID = FUSE_SET_ATTR_UID;
static const int SANDBOX_FUSE_SET_ATTR_GID = FUSE_SET_ATTR_GID;
static const int SANDBOX_FUSE_SET_ATTR_SIZE = FUSE_SET_ATTR_SIZE;
static const int SANDBOX_FUSE_SET_ATTR_ATIME = FUSE_SET_ATTR_ATIME;
static const int SANDBOX_FUSE_SET_ATTR_MTIME = FUSE_SET_ATTR_MTIME;
static const int SANDBOX_FUSE_SET_ATTR_ATIME_NOW = FUSE_SET_ATTR_ATIME_NOW;
static const int SANDBOX_FUSE_SET_ATTR_MTIME_NOW = FUSE_SET_ATTR_MTIME_NOW;
static const int SANDBOX_FUSE_SET_ATTR_CTIME = FUSE_SET_ATTR_CTIME;

// Bit-fields of fuse_file_info, read and written without relying on Swift's bit-field import.
static inline void sandbox_fuse_file_info_set_keep_cache(struct fuse_file_info *info, int on) {
  info->keep_cache = on ? 1 : 0;
}
static inline void sandbox_fuse_file_info_set_cache_readdir(struct fuse_file_info *info, int on) {
  info->cache_readdir = on ? 1 : 0;
}
static inline void sandbox_fuse_file_info_set_noflush(struct fuse_file_info *info, int on) {
  info->noflush = on ? 1 : 0;
}
static inline void sandbox_fuse_file_info_set_direct_io(struct fuse_file_info *info, int on) {
  info->direct_io = on ? 1 : 0;
}
#endif
