#ifndef SANDBOX_CZLIB_SHIM_H
#define SANDBOX_CZLIB_SHIM_H
#include <zlib.h>

// deflateInit2/inflateInit2 are macros; Swift cannot call them.
// windowBits 15 + 16 selects the gzip wrapper.
static inline int sandbox_deflate_init_gzip(z_streamp stream, int level) {
  return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
// windowBits 15 + 32 accepts both gzip and zlib headers.
static inline int sandbox_inflate_init_auto(z_streamp stream) {
  return inflateInit2(stream, 15 + 32);
}
#endif
