/* IMAP dates (imap_date.h): fixed layouts, checked field by field, and
 * the civil-calendar arithmetic done by hand so that no time zone of the
 * server (TZ, mktime) changes an answer. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap_date.h"

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d_r = doy - (153 * mp + 2) / 5 + 1;
    *m_r = mp < 10 ? mp + 3 : mp - 9;
    *y_r = (int64_t)yoe + era * 400 + (*m_r <= 2);
}

static bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* n digits at s, or false. */
static bool digits(const char *s, size_t n, unsigned *v_r)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *v_r = v;
    return true;
}

/* "Mon-yyyy" at s (8 bytes) after the day, checked against it. */
static bool month_year(const char *s, unsigned day, int64_t *days_r)
{
    unsigned m = 0, y;
    while (m < 12 && strncasecmp(s, months[m], 3) != 0)
        m++;
    if (m == 12 || s[3] != '-' || !digits(s + 4, 4, &y))
        return false;
    if (day < 1 || day > month_days(y, m + 1))
        return false;
    *days_r = days_from_civil(y, m + 1, day);
    return true;
}

bool imap_date_parse(const char *s, size_t len, int64_t *days_r)
{
    unsigned day;
    if (len == 10 && s[1] == '-' && digits(s, 1, &day))
        return month_year(s + 2, day, days_r);
    if (len == 11 && s[2] == '-' && digits(s, 2, &day))
        return month_year(s + 3, day, days_r);
    return false;
}

bool imap_datetime_parse(const char *s, size_t len, int64_t *t_r)
{
    unsigned day, hh, mm, ss, zh, zm;
    int64_t days;
    if (len != IMAP_DATETIME_LEN || s[2] != '-' || s[11] != ' ' || s[14] != ':' || s[17] != ':' ||
        s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
        return false;
    if (s[0] == ' ' ? !digits(s + 1, 1, &day) : !digits(s, 2, &day))
        return false;
    if (!month_year(s + 3, day, &days) || !digits(s + 12, 2, &hh) || !digits(s + 15, 2, &mm) ||
        !digits(s + 18, 2, &ss) || !digits(s + 22, 2, &zh) || !digits(s + 24, 2, &zm))
        return false;
    if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
        return false;
    int64_t zone = ((int64_t)zh * 60 + zm) * 60;
    *t_r = days * 86400 + (int64_t)hh * 3600 + mm * 60 + ss - (s[21] == '+' ? zone : -zone);
    return true;
}

void imap_datetime_format(int64_t t, char out[IMAP_DATETIME_LEN + 1])
{
    /* Years 0000-9999 fit the layout; others are clamped to its ends. */
    const int64_t lo = days_from_civil(0, 1, 1) * 86400;
    const int64_t hi = days_from_civil(10000, 1, 1) * 86400 - 1;
    t = t < lo ? lo : t > hi ? hi : t;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    petrel_snprintf(out, IMAP_DATETIME_LEN + 1, "%02u-%s-%04u %02u:%02u:%02u +0000", d,
                    months[m - 1], (unsigned)y, (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
                    (unsigned)(secs % 60));
}
