/* sec_prog - linked against libshmkeeper itself, so that the library is
 * loaded even when the program is setuid or setgid (the loader ignores
 * LD_PRELOAD paths then). Makes a few shared-memory calls; prints its ids. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

int main(void)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
	char name[64];
	snprintf(name, sizeof name, "/shmk-sec-%d", (int)getpid());
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd >= 0) {
		shm_unlink(name);
		close(fd);
	}
	printf("uid=%d euid=%d gid=%d egid=%d id=%d fd=%d\n", (int)getuid(), (int)geteuid(),
	       (int)getgid(), (int)getegid(), id, fd);
	return id >= 0 && fd >= 0 ? 0 : 1;
}
