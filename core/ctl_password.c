/* Reading a new password for petrelctl: from the terminal without echo,
 * asked twice, or one line from standard input when that is not a
 * terminal (scripts: `echo PW | petrelctl account add ...`). Never from
 * the command line, where every user could read it in ps. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/password.h>

#include "ctl_password.h"

static void wipe(char *p, size_t n) { explicit_bzero(p, n); }

/* While echo is off: the terminal as it was, and as we set it. A signal
 * that stops or ends petrelctl at the prompt gives the terminal back
 * first, so Ctrl-C or Ctrl-Z does not leave the shell without echo. */
static struct termios tty_saved, tty_quiet;
static volatile sig_atomic_t tty_is_quiet;
static const int tty_signals[] = {SIGINT, SIGTERM, SIGTSTP, SIGQUIT, SIGHUP};
static struct sigaction tty_old[sizeof(tty_signals) / sizeof(tty_signals[0])];

static void tty_signal(int sig)
{
    int saved_errno = errno;
    if (tty_is_quiet)
        tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
    /* Default action, unblocked, and raised again: the process ends (or
     * stops) as it would have without us. */
    struct sigaction dfl = {.sa_handler = SIG_DFL}, mine;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, &mine);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    /* Continued after a stop: back to the prompt without echo. */
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigaction(sig, &mine, NULL);
    if (tty_is_quiet)
        tcsetattr(STDIN_FILENO, TCSANOW, &tty_quiet);
    errno = saved_errno;
}

static void tty_handlers(bool install)
{
    for (size_t i = 0; i < sizeof(tty_signals) / sizeof(tty_signals[0]); i++) {
        if (!install) {
            sigaction(tty_signals[i], &tty_old[i], NULL);
            continue;
        }
        sigaction(tty_signals[i], NULL, &tty_old[i]);
        if (tty_old[i].sa_handler == SIG_IGN)
            continue; /* ignored (nohup): leave it so */
        struct sigaction sa = {.sa_handler = tty_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(tty_signals[i], &sa, NULL);
    }
}

/* One line from fd into buf; false on EOF before anything, or too long. */
static bool read_line(int fd, char *buf, size_t size, const char **error_r)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n')
            break;
        if (n + 1 >= size) {
            *error_r = "password too long (at most 511 bytes)";
            wipe(buf, size);
            return false;
        }
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n == 0) {
        *error_r = "empty password";
        return false;
    }
    return true;
}

static bool prompt(const char *text, char *buf, size_t size, const char **error_r)
{
    struct termios check;
    if (tcgetattr(STDIN_FILENO, &tty_saved) < 0) {
        *error_r = "cannot read the terminal";
        return false;
    }
    tty_quiet = tty_saved;
    tty_quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
    tty_quiet.c_lflag |= ICANON;
    tty_handlers(true);
    tty_is_quiet = 1;
    /* Echo off (dropping what was typed ahead) before the prompt shows:
     * whatever is typed once the prompt is there is kept and not echoed.
     * tcsetattr succeeds if any of the changes took: check echo is off. */
    bool ok = tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_quiet) == 0 &&
              tcgetattr(STDIN_FILENO, &check) == 0 && (check.c_lflag & ECHO) == 0;
    bool shown = ok; /* the prompt is written only with echo off */
    if (!ok) {
        *error_r = "cannot turn off echo on the terminal";
    } else {
        fputs(text, stderr);
        fflush(stderr);
        ok = read_line(STDIN_FILENO, buf, size, error_r);
    }
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
    tty_is_quiet = 0;
    tty_handlers(false);
    if (shown)
        fputc('\n', stderr); /* the Enter that was not echoed */
    if (!ok)
        wipe(buf, size);
    return ok;
}

char *ctl_password_read(const char **error_r)
{
    char a[PETREL_PASSWORD_MAX + 2], b[PETREL_PASSWORD_MAX + 2];
    char *r = NULL;
    if (!isatty(STDIN_FILENO)) {
        if (read_line(STDIN_FILENO, a, sizeof(a), error_r))
            r = petrel_strdup(a);
    } else if (prompt("New password: ", a, sizeof(a), error_r) &&
               prompt("Again: ", b, sizeof(b), error_r)) {
        if (strcmp(a, b) == 0)
            r = petrel_strdup(a);
        else
            *error_r = "the passwords differ";
    }
    /* Every path: nothing of the password stays on the stack. */
    wipe(a, sizeof(a));
    wipe(b, sizeof(b));
    return r;
}

void ctl_password_free(char *pw)
{
    if (pw == NULL)
        return;
    wipe(pw, strlen(pw));
    free(pw);
}
