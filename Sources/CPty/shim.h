#ifndef SANDBOX_CPTY_SHIM_H
#define SANDBOX_CPTY_SHIM_H
// Pseudo-terminals for process.Process/Start with `pty`: openpty, a fork that gives the child
// the terminal as its controlling tty, and TIOCSWINSZ. Swift cannot call ioctl (variadic), and
// the child side must run only async-signal-safe calls, so all of it stays in C.
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static inline int cpty_set_size(int fd, unsigned short cols, unsigned short rows) {
  struct winsize size = {.ws_row = rows, .ws_col = cols, .ws_xpixel = 0, .ws_ypixel = 0};
  return ioctl(fd, TIOCSWINSZ, &size);
}

// Closes descriptors from `low` to `high` (inclusive) in the child.
static inline void cpty_close_range(unsigned int low, unsigned int high) {
  if (low > high) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, low, high, 0) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (long fd = low; fd <= (long)high && fd < max; fd++) close((int)fd);
}

// Starts `path` on a new pseudo-terminal of `cols`×`rows`: the child is a session leader with
// the terminal as controlling tty and as stdin, stdout and stderr, starts in `directory_fd`
// (fchdir, O_PATH is enough), with default signal handlers, an empty signal mask and no other
// descriptor. Returns the pid and sets `*master_out` (close-on-exec); -1 with `*error_out` set
// (an errno) when the terminal, the fork or the exec failed.
static inline pid_t cpty_spawn(int *master_out, unsigned short cols, unsigned short rows,
                               const char *path, char *const argv[], char *const envp[],
                               int directory_fd, int *error_out) {
  struct winsize size = {.ws_row = rows, .ws_col = cols, .ws_xpixel = 0, .ws_ypixel = 0};
  int master = -1, slave = -1;
  if (openpty(&master, &slave, NULL, NULL, &size) != 0) {
    *error_out = errno;
    return -1;
  }
  fcntl(master, F_SETFD, FD_CLOEXEC);
  fcntl(slave, F_SETFD, FD_CLOEXEC);
  // The child reports a failed exec through this pipe; a successful exec closes it.
  // (pipe2 needs _GNU_SOURCE; every child of the agent closes what it does not own anyway.)
  int report[2];
  if (pipe(report) != 0) {
    *error_out = errno;
    close(master);
    close(slave);
    return -1;
  }
  fcntl(report[0], F_SETFD, FD_CLOEXEC);
  fcntl(report[1], F_SETFD, FD_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction defaults;
    defaults.sa_handler = SIG_DFL;
    defaults.sa_flags = 0;
    sigemptyset(&defaults.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &defaults, NULL);
    int failed = setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0;
    failed = failed || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0;
    failed = failed || fchdir(directory_fd) < 0;
    if (!failed) {
      cpty_close_range(3, (unsigned int)report[1] - 1);
      cpty_close_range((unsigned int)report[1] + 1, ~0U);
      execve(path, argv, envp);
    }
    int code = errno;
    (void)!write(report[1], &code, sizeof code);
    _exit(127);
  }
  int code = errno;
  close(slave);
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    close(master);
    *error_out = code;
    return -1;
  }
  int child_error = 0;
  ssize_t got;
  do {
    got = read(report[0], &child_error, sizeof child_error);
  } while (got < 0 && errno == EINTR);
  close(report[0]);
  if (got == (ssize_t)sizeof child_error) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    close(master);
    *error_out = child_error;
    return -1;
  }
  *master_out = master;
  return pid;
}

#endif
