/*
 * The check harness the C binding tests share: counters, CHECK for a condition, EXPECT for a
 * call's status (a failure must leave a message in moragent_last_error(), a success must clear
 * it), MESSAGE_HAS for the last error's text, and path_join. Each test program includes it once
 * and prints "NAME: <passed> passed, <failed> failed" at the end.
 */
#ifndef MORAGENT_TEST_CHECK_H
#define MORAGENT_TEST_CHECK_H

#include "moragent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static inline void check(int ok, int line, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL (line %d): %s\n", line, what);
    }
}
#define CHECK(condition) check((condition) != 0, __LINE__, #condition)

/* A call must return `expected`; a failure must leave a message, a success must clear it. */
static inline void expect_status(moragent_status got, moragent_status expected, int line, const char *call) {
    const char *message = moragent_last_error();
    int ok = got == expected && (expected == MORAGENT_OK ? message[0] == '\0' : message[0] != '\0');
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL (line %d): %s returned %d (%s), expected %d; message \"%s\"\n", line, call, (int)got,
                moragent_status_string(got), (int)expected, message);
    }
}
#define EXPECT(expected, call) expect_status((call), (expected), __LINE__, #call)
/* The last error contains `text`. */
#define MESSAGE_HAS(text) check(strstr(moragent_last_error(), (text)) != NULL, __LINE__, "message has " text)

/* `dir/name`, malloc'ed (the caller frees it). */
static inline char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = (char *)malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

#endif
