/* A plugin for tests/dlframes.sh, built twice (PLUG_FN names the function):
 * creates a SysV segment and leaves it, from a frame inside the plugin. */
#include <sys/ipc.h>
#include <sys/shm.h>

int PLUG_FN(void);

__attribute__((noinline)) int PLUG_FN(void)
{
	int id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
	__asm__ __volatile__("" ::: "memory");   /* not a tail call */
	return id;
}
