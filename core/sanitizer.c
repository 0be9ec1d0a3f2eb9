/* Built-in LeakSanitizer suppressions, so every sanitizer run of petreld
 * (and of the config fuzzer) knows them without environment settings.
 *
 * libconfig 1.5 (Debian bookworm) leaks its scanner's string buffer when a
 * file has certain syntax errors; the leak is inside the library
 * (reproduced with a program that only calls config_read_file and
 * config_destroy), so a refused reload would otherwise fail a test run. */
#include "config.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void) { return "leak:libconfig.so\n"; }
#endif
