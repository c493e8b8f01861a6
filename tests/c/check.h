/*
 * A minimal test framework for podnet's C tests: CHECK macros record failures with file:line,
 * each test function (or table row) is one case, and the runner prints
 * "N passed, N failed" as its last line (CI reads that line).
 */
#ifndef PODNET_TEST_CHECK_H
#define PODNET_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include <podnet.h>

/* Failures recorded since the current case began. */
extern int check_case_failures;

void check_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Count one case: passed when no CHECK failed since the previous case ended. */
void check_case_end(const char *name);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                \
    } while (0)

#define CHECK_INT(got, want)                                                            \
    do {                                                                                \
        long long got_ = (long long)(got), want_ = (long long)(want);                   \
        if (got_ != want_)                                                              \
            check_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #got, got_, want_); \
    } while (0)

#define CHECK_STR(got, want)                                                            \
    do {                                                                                \
        const char *got_ = (got), *want_ = (want);                                      \
        if (got_ == NULL || strcmp(got_, want_) != 0)                                   \
            check_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #got,           \
                       got_ ? got_ : "(null)", want_);                                  \
    } while (0)

/* A call that must succeed; `call` passes &err, whose message is printed on failure. */
#define CHECK_OK(call)                                                                  \
    do {                                                                                \
        podnet_error *err = NULL;                                                       \
        podnet_status ok_st_ = (call);                                                  \
        if (ok_st_ != PODNET_STATUS_OK)                                                 \
            check_fail(__FILE__, __LINE__, "%s: %s: %s", #call, podnet_status_str(ok_st_), \
                       err ? podnet_error_message(err) : "(no error object)");          \
        podnet_error_free(err);                                                         \
    } while (0)

/* Expect `call` (which passes &err) to fail with `want`, leave a complete error in err, and
 * (when op is not NULL) name `op` as the failed operation. */
void check_refused(const char *file, int line, const char *call, podnet_status got,
                   podnet_error *err, podnet_status want, const char *op);

#define REFUSED(want, op, call)                                                         \
    do {                                                                                \
        podnet_error *err = NULL;                                                       \
        podnet_status st_ = (call);                                                     \
        check_refused(__FILE__, __LINE__, #call, st_, err, (want), (op));               \
    } while (0)

/* REFUSED naming the called function itself as the failed operation:
 * REFUSED_CALL(want, podnet_x, args...) is REFUSED(want, "podnet_x", podnet_x(args...)). */
#define REFUSED_CALL(want, fn, ...) REFUSED((want), #fn, fn(__VA_ARGS__))

/* Bytes that are not UTF-8, for string arguments. */
#define CHECK_NOT_UTF8 "ab\xff\xfe"

/* The checks every string argument of a setter `fn(obj, string, &err)` gets: a NULL object (with
 * the valid string `good`), a NULL string, a string that is not UTF-8 and, unless `too_long` is
 * NULL, one over the argument's length limit. */
#define REFUSED_STRING(fn, obj, good, too_long)                                         \
    do {                                                                                \
        const char *too_long_ = (too_long);                                             \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, NULL, (good), &err);              \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (obj), NULL, &err);               \
        REFUSED_CALL(PODNET_STATUS_INVALID_UTF8, fn, (obj), CHECK_NOT_UTF8, &err);      \
        if (too_long_) REFUSED_CALL(PODNET_STATUS_TOO_LONG, fn, (obj), too_long_, &err); \
    } while (0)

/* The checks every string-array argument of `fn(obj, array, count, ...)` gets (`...`: the
 * arguments after the count, &err last): a NULL object (with `good`, whose first string is
 * valid, and count 1), a NULL array with count 1, and with count n the arrays `nul`, whose
 * string n - 1 is NULL, and `not_utf8`, whose string n - 1 is not UTF-8. */
#define REFUSED_STRINGS(fn, obj, good, nul, not_utf8, n, ...)                            \
    do {                                                                                \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, NULL, (good), 1, __VA_ARGS__);      \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (obj), NULL, 1, __VA_ARGS__);       \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (obj), (nul), (n), __VA_ARGS__);    \
        REFUSED_CALL(PODNET_STATUS_INVALID_UTF8, fn, (obj), (not_utf8), (n), __VA_ARGS__); \
    } while (0)

/* The same for the name of a constructor `fn(name, &out, &err)`, and a NULL out-parameter:
 * `sentinel` (the caller's out variable) is never written. */
#define REFUSED_NEW(fn, good, sentinel, too_long)                                       \
    do {                                                                                \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, NULL, &(sentinel), &err);         \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (good), NULL, &err);              \
        REFUSED_CALL(PODNET_STATUS_INVALID_UTF8, fn, CHECK_NOT_UTF8, &(sentinel), &err); \
        REFUSED_CALL(PODNET_STATUS_TOO_LONG, fn, (too_long), &(sentinel), &err);        \
    } while (0)

/* The checks every address argument of a query `fn(obj, text, out, &err)` gets: a NULL object
 * (with the valid text `good`), a NULL text, a NULL out-parameter, text that is not UTF-8
 * (`not_utf8`) and text that is no address (`not_addr`). */
#define REFUSED_ADDR_QUERY(fn, obj, good, out, not_utf8, not_addr)                       \
    do {                                                                                \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, NULL, (good), (out), &err);         \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (obj), NULL, (out), &err);          \
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, fn, (obj), (good), NULL, &err);         \
        REFUSED_CALL(PODNET_STATUS_INVALID_UTF8, fn, (obj), (not_utf8), (out), &err);     \
        REFUSED_CALL(PODNET_STATUS_INVALID_ADDRESS, fn, (obj), (not_addr), (out), &err);  \
    } while (0)

/* A constructor `fn(name, &obj, &err)` takes a name of exactly `max` bytes: `long_name`, a
 * longer name of 'x's, is cut there for the call and restored after; the object is freed with
 * free_fn. */
#define CHECK_NAME_MAX(fn, free_fn, obj, long_name, max)                                 \
    do {                                                                                \
        (long_name)[max] = '\0';                                                        \
        CHECK_OK(fn((long_name), &(obj), &err));                                        \
        free_fn(obj);                                                                   \
        (long_name)[max] = 'x';                                                         \
    } while (0)

/* Text that is no CIDR: every CIDR argument refuses each with PODNET_STATUS_INVALID_ADDRESS. */
extern const char *const check_not_cidrs[];

/* `fn(obj, cidr, &err)` refuses every string of check_not_cidrs (a failure names the string). */
#define REFUSED_CIDR(fn, obj)                                                           \
    do {                                                                                \
        for (const char *const *bad_ = check_not_cidrs; *bad_; bad_++) {                 \
            char call_[256];                                                            \
            podnet_error *err = NULL;                                                   \
            podnet_status st_ = fn((obj), *bad_, &err);                                 \
            snprintf(call_, sizeof call_, "%s(%s, \"%s\", &err)", #fn, #obj, *bad_);     \
            check_refused(__FILE__, __LINE__, call_, st_, err, PODNET_STATUS_INVALID_ADDRESS, #fn); \
        }                                                                               \
    } while (0)

/* Define `static size_t name(const podnet_node *node)`: how many elements the node's list call
 * `list_fn(node, &list, &err)` returns (read with `count_fn`, freed with `free_fn`), or
 * (size_t)-1 when the call fails. */
#define DEFINE_LIST_COUNT(name, list_type, list_fn, count_fn, free_fn)                  \
    static size_t name(const podnet_node *node) {                                       \
        list_type *list_ = NULL;                                                        \
        size_t n_ = (size_t)-1;                                                         \
        CHECK_OK(list_fn(node, &list_, &err));                                          \
        if (list_) n_ = count_fn(list_);                                                \
        free_fn(list_);                                                                 \
        return n_;                                                                      \
    }

/* Short names of the statuses the bad-input tests expect. */
enum {
    NUL = PODNET_STATUS_NULL_ARGUMENT,
    UTF = PODNET_STATUS_INVALID_UTF8,
    LONG = PODNET_STATUS_TOO_LONG,
    ARG = PODNET_STATUS_INVALID_ARGUMENT,
    ADDR = PODNET_STATUS_INVALID_ADDRESS
};

/* What out-parameters hold before a call that must not write them. */
extern int check_sentinel;
#define SENT ((void *)&check_sentinel)

/* Run a shell command of the test's own world (never from the library): true when it exits 0
 * (sh_ok, which prints the command otherwise) or when it fails (sh_fails, likewise). */
int sh_ok(const char *cmd);
int sh_fails(const char *cmd);

/* Shared by the test files. */
extern podnet_node *test_node;
/* A sandbox with the default spec on test_node (NULL, and a failed check, when the create fails). */
podnet_sandbox *test_sandbox_create(const char *id);
void test_node_lifecycle(void);
void test_idempotence(void);
void test_gc(void);
void test_concurrency(void);
void test_log_callback(void);
void test_panic_boundary(void);
void test_ports(void);
void test_labels(void);
void test_bad_input_node(void);
/* test_agent.c */
void test_agent(void);
/* test_cluster.c */
void test_plan(void);
void test_node_cidr_allocator(void);
void test_service_ip_allocator(void);
void test_bad_input_cluster(void);
/* test_multinode.c */
void test_bad_input_multinode_objects(void);
void test_bad_input_multinode_node(void);
void test_sandbox_mode(void);
void test_peers(void);
void test_host_ports(void);
/* test_services.c */
void test_service_builder(void);
void test_services(void);

#endif
