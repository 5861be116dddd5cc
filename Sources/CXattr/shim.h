#ifndef SANDBOX_CXATTR_SHIM_H
#define SANDBOX_CXATTR_SHIM_H
// Extended attributes (part of glibc, but not of Swift's Glibc module).
#include <sys/xattr.h>
#endif
