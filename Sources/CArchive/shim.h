#ifndef SANDBOX_CARCHIVE_SHIM_H
#define SANDBOX_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
