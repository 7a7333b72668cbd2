/* dlclose: only to tell the recorder that the module list changed.
 *
 * Events look at the module list only when a frame is new to them
 * (core/record.c): a library dlclose'd and another mapped at its address
 * would keep the first one's frames known. dlopen is not wrapped: glibc
 * takes its caller's return address for the caller's DT_RPATH and $ORIGIN,
 * and a wrapper would make that ours; a new library's frames are new
 * addresses anyway. The real call's result and errno (and dlerror state)
 * are untouched. */
#include <dlfcn.h>

#include "core/record.h"
#include "preload/real.h"

SK_EXPORT int dlclose(void *handle)
{
	int ret = REAL(dlclose)(handle);
	sk_rec_modules_changed();
	return ret;
}
