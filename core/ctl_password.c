/* Reading a new password for petrelctl: from the terminal without echo,
 * asked twice, or one line from standard input when that is not a
 * terminal (scripts: `echo PW | petrelctl account add ...`). Never from
 * the command line, where every user could read it in ps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <petrel/mem.h>
#include <petrel/password.h>

#include "ctl_password.h"

static void wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = 0;
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
    struct termios old, quiet;
    if (tcgetattr(STDIN_FILENO, &old) < 0) {
        *error_r = "cannot read the terminal";
        return false;
    }
    quiet = old;
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    fputs(text, stderr);
    fflush(stderr);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    bool ok = read_line(STDIN_FILENO, buf, size, error_r);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    return ok;
}

char *ctl_password_read(const char **error_r)
{
    char a[PETREL_PASSWORD_MAX + 2], b[PETREL_PASSWORD_MAX + 2];
    if (!isatty(STDIN_FILENO))
        return read_line(STDIN_FILENO, a, sizeof(a), error_r) ? petrel_strdup(a) : NULL;
    if (!prompt("New password: ", a, sizeof(a), error_r))
        return NULL;
    bool ok = prompt("Again: ", b, sizeof(b), error_r);
    if (ok && strcmp(a, b) != 0) {
        *error_r = "the passwords differ";
        ok = false;
    }
    char *r = ok ? petrel_strdup(a) : NULL;
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
