#ifndef PETREL_CORE_CTL_PASSWORD_H
#define PETREL_CORE_CTL_PASSWORD_H

/* A new password from the terminal (asked twice, no echo) or from one line
 * of standard input. NULL with error_r. Free with ctl_password_free. */
char *ctl_password_read(const char **error_r);
/* Wipes, then frees. */
void ctl_password_free(char *password);

#endif
