/*
 * C tests of libpodnet, part 1: the framework, version, status codes, error objects and the
 * bad-input table for objects that need no node. Part 2 (test_node.c, a second translation
 * unit including podnet.h) drives a node; part 3 (test_cluster.c) plans and allocates cluster
 * addresses; part 4 (test_multinode.c) covers peers, host ports and the multi-node config;
 * part 5 (test_agent.c) the cluster agent; part 6 (test_services.c) services.
 *
 * Run as root inside a throwaway network + mount namespace with tmpfs on /run (the Makefile's
 * `c-test` does this): the node is the test's own netns, pods are pinned under /run/netns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\" (the workspace version from Cargo.toml)"
#endif

int check_case_failures = 0;
int check_sentinel;
const char *const check_not_cidrs[] = {"bogus",        "10.1.0.0",      "10.1.0.0/33",  "10.1.0.0/",
                                       "10.1.0/24",    "10.1.0.0/+16",  "fd00::/129",   " 10.1.0.0/24",
                                       "10.1.0.0/24 ", "10.1.0.0/16/1", "10.1.0.0/23x", NULL};
static int passed = 0, failed = 0;
podnet_node *test_node = NULL;

void check_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "  FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    check_case_failures++;
}

/* Run a shell command of the test's own world (never from the library): true when it exits 0
 * (sh_ok, which prints the command otherwise) or when it fails (sh_fails, likewise). */
int sh_ok(const char *cmd) {
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "  (exit status %d: %s)\n", rc, cmd);
    return rc == 0;
}

int sh_fails(const char *cmd) {
    int rc = system(cmd);
    if (rc == 0) fprintf(stderr, "  (succeeded: %s)\n", cmd);
    return rc != 0;
}

void check_case_end(const char *name) {
    if (check_case_failures == 0) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED %s\n", name);
    }
    check_case_failures = 0;
}

void check_refused(const char *file, int line, const char *call, podnet_status got,
                   podnet_error *err, podnet_status want, const char *op) {
    int before = check_case_failures;
    if (got != want) {
        check_fail(file, line, "%s: status %s, want %s (%s)", call, podnet_status_str(got),
                   podnet_status_str(want), err ? podnet_error_message(err) : "no error object");
    } else if (err == NULL) {
        check_fail(file, line, "%s: no error object", call);
    } else {
        const char *msg = podnet_error_message(err), *opn = podnet_error_operation(err);
        if (podnet_error_status(err) != want)
            check_fail(file, line, "%s: error object status %u", call, podnet_error_status(err));
        if (msg == NULL || strlen(msg) < 5)
            check_fail(file, line, "%s: empty message", call);
        if (opn == NULL || (op != NULL && strcmp(opn, op) != 0))
            check_fail(file, line, "%s: operation \"%s\", want \"%s\"", call, opn ? opn : "(null)",
                       op ? op : "(any)");
    }
    podnet_error_free(err);
    /* Each row of a bad-input table is a case of its own. */
    if (check_case_failures == before) passed++;
    else failed++;
    check_case_failures = before;
}

#define RUN(fn)                                                                        \
    do {                                                                               \
        fprintf(stderr, "-- %s\n", #fn);                                               \
        fn();                                                                          \
        check_case_end(#fn);                                                           \
    } while (0)

/* Strings for the bad-input table. */
static const char NOT_UTF8[] = "ab\xff\xfe";
static char long_name[130];  /* 129 bytes: one over the id limit */
static char long_ifname[17]; /* 16 bytes */
static char long_path[5000];

static void test_version(void) {
    unsigned major = 99, minor = 99, patch = 99;
    CHECK_STR(PODNET_VERSION, EXPECTED_VERSION);
    CHECK_STR(podnet_version(), PODNET_VERSION);
    CHECK_INT(sscanf(EXPECTED_VERSION, "%u.%u.%u", &major, &minor, &patch), 3);
    CHECK_INT(PODNET_VERSION_MAJOR, major);
    CHECK_INT(PODNET_VERSION_MINOR, minor);
    CHECK_INT(PODNET_VERSION_PATCH, patch);
    CHECK(sizeof(podnet_status) == 4);
}

static void test_status_str(void) {
    static const struct {
        podnet_status status;
        unsigned value;
        const char *name;
    } all[] = {
        {PODNET_STATUS_OK, 0, "ok"},
        {PODNET_STATUS_INVALID_ARGUMENT, 1, "invalid_argument"},
        {PODNET_STATUS_NULL_ARGUMENT, 2, "null_argument"},
        {PODNET_STATUS_INVALID_UTF8, 3, "invalid_utf8"},
        {PODNET_STATUS_NOT_FOUND, 4, "not_found"},
        {PODNET_STATUS_ALREADY_EXISTS, 5, "already_exists"},
        {PODNET_STATUS_EXHAUSTED, 6, "exhausted"},
        {PODNET_STATUS_CONFLICT, 7, "conflict"},
        {PODNET_STATUS_PERMISSION, 8, "permission"},
        {PODNET_STATUS_KERNEL, 9, "kernel"},
        {PODNET_STATUS_IO, 10, "io"},
        {PODNET_STATUS_INCONSISTENT, 11, "inconsistent"},
        {PODNET_STATUS_INTERNAL, 12, "internal"},
        {PODNET_STATUS_PANIC, 13, "panic"},
        {PODNET_STATUS_TOO_LONG, 14, "too_long"},
        {PODNET_STATUS_INVALID_ADDRESS, 15, "invalid_address"},
        {PODNET_STATUS_NOT_READY, 100, "not_ready"},
    };
    size_t i, j, n = sizeof all / sizeof all[0];
    for (i = 0; i < n; i++) {
        CHECK_INT(all[i].status, all[i].value); /* values are ABI: never renumbered */
        CHECK_STR(podnet_status_str(all[i].status), all[i].name);
        for (j = 0; j < i; j++) CHECK(strcmp(podnet_status_str(all[i].status), podnet_status_str(all[j].status)) != 0);
    }
    CHECK_STR(podnet_status_str(16), "unknown");
    CHECK_STR(podnet_status_str(101), "unknown");
    CHECK_STR(podnet_status_str(0xffffffffu), "unknown");
    CHECK_INT(PODNET_MODE_UNKNOWN, 0);
    CHECK_INT(PODNET_MODE_BRIDGE, 1);
    CHECK_INT(PODNET_MODE_ROUTED, 2);
    CHECK_INT(PODNET_PROTOCOL_TCP, 6);
    CHECK_INT(PODNET_PROTOCOL_UDP, 17);
    CHECK_INT(PODNET_PROTOCOL_SCTP, 132);
    CHECK_INT(PODNET_CROSS_NODE_MODE_UNKNOWN, 0);
    CHECK_INT(PODNET_CROSS_NODE_MODE_OVERLAY, 1);
    CHECK_INT(PODNET_CROSS_NODE_MODE_ROUTED, 2);
    CHECK_INT(PODNET_CROSS_NODE_MODE_AUTO, 3);
    CHECK_INT(PODNET_PLAN_WARNING_UNKNOWN, 0);
    CHECK_INT(PODNET_PLAN_WARNING_OVERLAP, 1);
    CHECK_INT(PODNET_PLAN_WARNING_NODE_CIDRS_EXCEED_MACHINES, 3);
    CHECK_INT(PODNET_PLAN_WARNING_SERVICE_FAMILY_WITHOUT_PODS, 12);
    CHECK_INT(PODNET_IP_STR_LEN, 46);
    CHECK(sizeof(podnet_cross_node_mode) == 4 && sizeof(podnet_plan_warning) == 4);
    CHECK_INT(PODNET_LOG_LEVEL_OFF, 0);
    CHECK_INT(PODNET_LOG_LEVEL_TRACE, 5);
}

/* An error from the core carries status, message, operation and errno. */
static void test_error_object(void) {
    podnet_node_config *cfg = NULL;
    podnet_node *node = (podnet_node *)&passed; /* sentinel: must stay untouched */
    podnet_error *err = NULL;
    podnet_status st;
    CHECK_OK(podnet_node_config_new("errtest", &cfg, &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.77.0.0/24", &err));
    CHECK_OK(podnet_node_config_set_netns_path(cfg, "/nonexistent/podnet-ns", &err));
    st = podnet_node_open(cfg, &node, &err);
    CHECK_INT(st, PODNET_STATUS_NOT_FOUND);
    CHECK(node == (podnet_node *)&passed);
    CHECK(err != NULL);
    if (err) {
        CHECK_INT(podnet_error_status(err), PODNET_STATUS_NOT_FOUND);
        CHECK_INT(podnet_error_errno(err), ENOENT);
        CHECK(strstr(podnet_error_operation(err), "open node netns /nonexistent/podnet-ns") != NULL);
        CHECK(strstr(podnet_error_message(err), podnet_error_operation(err)) == podnet_error_message(err));
        CHECK(strstr(podnet_error_message(err), "No such file") != NULL);
        podnet_error_free(err);
    }
    /* err_out may be NULL: the status alone. */
    CHECK_INT(podnet_node_open(cfg, &node, NULL), PODNET_STATUS_NOT_FOUND);
    podnet_node_config_free(cfg);
    /* Accessors on NULL. */
    CHECK_INT(podnet_error_status(NULL), PODNET_STATUS_NULL_ARGUMENT);
    CHECK(podnet_error_message(NULL) == NULL);
    CHECK(podnet_error_operation(NULL) == NULL);
    CHECK_INT(podnet_error_errno(NULL), 0);
    podnet_error_free(NULL);
}

/* Every pointer argument NULL, non-UTF-8 strings, over-long names, malformed addresses: each
 * refused with its own status, an error object naming the function, and nothing written. */
static void test_bad_input_objects(void) {
    podnet_node_config *cfg = NULL, *cfg_keep;
    podnet_sandbox_spec *spec = NULL, *spec_keep;
    podnet_sandbox_spec *spec_sentinel = (podnet_sandbox_spec *)&passed;
    podnet_node_config *cfg_sentinel = (podnet_node_config *)&passed;
    /* podnet_node_config_new */
    REFUSED_NEW(podnet_node_config_new, "n", cfg_sentinel, long_name);
    REFUSED_CALL(ARG, podnet_node_config_new, "a/b", &cfg_sentinel, &err);
    REFUSED_CALL(ARG, podnet_node_config_new, "..", &cfg_sentinel, &err);
    REFUSED_CALL(ARG, podnet_node_config_new, "", &cfg_sentinel, &err);
    CHECK(cfg_sentinel == (podnet_node_config *)&passed);

    CHECK_OK(podnet_node_config_new("bad-input", &cfg, &err));
    cfg_keep = cfg;
    /* set_netns_path / set_state_dir / set_netns_dir */
    REFUSED_STRING(podnet_node_config_set_netns_path, cfg, "/x", long_path);
    REFUSED_CALL(ARG, podnet_node_config_set_netns_path, cfg, "rel/ns", &err);
    REFUSED_STRING(podnet_node_config_set_state_dir, cfg, "/x", long_path);
    REFUSED_CALL(ARG, podnet_node_config_set_state_dir, cfg, "", &err);
    REFUSED_STRING(podnet_node_config_set_netns_dir, cfg, "/x", NULL);
    REFUSED_CALL(ARG, podnet_node_config_set_netns_dir, cfg, "netns", &err);
    /* add_pod_cidr */
    REFUSED_STRING(podnet_node_config_add_pod_cidr, cfg, "10.1.0.0/24", long_path);
    REFUSED_CIDR(podnet_node_config_add_pod_cidr, cfg);
    REFUSED_CALL(ARG, podnet_node_config_add_pod_cidr, cfg, "10.1.0.5/24", &err);
    REFUSED_CALL(ARG, podnet_node_config_add_pod_cidr, cfg, "10.1.0.0/32", &err);
    /* without a CIDR the config is invalid as a whole */
    REFUSED(ARG, NULL, podnet_node_config_validate(cfg, &err));
    REFUSED_CALL(NUL, podnet_node_config_validate, NULL, &err);
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.1.0.0/24", &err));
    CHECK_OK(podnet_node_config_validate(cfg, &err));
    REFUSED_CALL(ARG, podnet_node_config_add_pod_cidr, cfg, "10.2.0.0/24", &err);
    /* set_ip_range / add_reserved_ip */
    REFUSED_CALL(NUL, podnet_node_config_set_ip_range, NULL, "10.1.0.5", "10.1.0.9", &err);
    REFUSED_CALL(NUL, podnet_node_config_set_ip_range, cfg, NULL, "10.1.0.9", &err);
    REFUSED_CALL(NUL, podnet_node_config_set_ip_range, cfg, "10.1.0.5", NULL, &err);
    REFUSED_CALL(UTF, podnet_node_config_set_ip_range, cfg, NOT_UTF8, "10.1.0.9", &err);
    REFUSED_CALL(ADDR, podnet_node_config_set_ip_range, cfg, "10.1.0.300", "10.1.0.9", &err);
    REFUSED_CALL(ADDR, podnet_node_config_set_ip_range, cfg, "10.1.0.5/24", "10.1.0.9", &err);
    REFUSED_CALL(ARG, podnet_node_config_set_ip_range, cfg, "10.1.0.9", "10.1.0.5", &err);
    REFUSED_CALL(ARG, podnet_node_config_set_ip_range, cfg, "10.9.0.5", "10.9.0.9", &err);
    REFUSED_STRING(podnet_node_config_add_reserved_ip, cfg, "10.1.0.7", NULL);
    REFUSED_CALL(ADDR, podnet_node_config_add_reserved_ip, cfg, "10.1.0", &err);
    REFUSED_CALL(ARG, podnet_node_config_add_reserved_ip, cfg, "10.9.0.7", &err);
    /* set_mode / set_bridge_name / set_mtu */
    REFUSED_CALL(NUL, podnet_node_config_set_mode, NULL, PODNET_MODE_ROUTED, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_mode, cfg, PODNET_MODE_UNKNOWN, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_mode, cfg, 77, &err);
    REFUSED_STRING(podnet_node_config_set_bridge_name, cfg, "br0", long_ifname);
    REFUSED_CALL(ARG, podnet_node_config_set_bridge_name, cfg, "br 0", &err);
    REFUSED_CALL(NUL, podnet_node_config_set_mtu, NULL, 1500, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_mtu, cfg, 100, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_mtu, cfg, 70000, &err);
    /* the valid setters work */
    CHECK_OK(podnet_node_config_set_ip_range(cfg, "10.1.0.10", "10.1.0.20", &err));
    CHECK_OK(podnet_node_config_add_reserved_ip(cfg, "10.1.0.11", &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "fd00:1::/64", &err));
    CHECK_OK(podnet_node_config_set_mode(cfg, PODNET_MODE_ROUTED, &err));
    CHECK_OK(podnet_node_config_set_bridge_name(cfg, "br-test_0", &err));
    CHECK_OK(podnet_node_config_set_mtu(cfg, 9000, &err));
    CHECK_OK(podnet_node_config_validate(cfg, &err));
    CHECK(cfg == cfg_keep);
    /* freed, then NULL: setters refuse */
    podnet_node_config_free(cfg);
    cfg = NULL;
    REFUSED_CALL(NUL, podnet_node_config_add_pod_cidr, cfg, "10.1.0.0/24", &err);
    REFUSED_CALL(NUL, podnet_node_config_set_mtu, cfg, 1500, &err);
    podnet_node_config_free(NULL);

    /* podnet_sandbox_spec_new */
    REFUSED_NEW(podnet_sandbox_spec_new, "s", spec_sentinel, long_name);
    REFUSED_CALL(ARG, podnet_sandbox_spec_new, "../etc", &spec_sentinel, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_new, "a b", &spec_sentinel, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_new, "", &spec_sentinel, &err);
    CHECK(spec_sentinel == (podnet_sandbox_spec *)&passed);
    CHECK_NAME_MAX(podnet_sandbox_spec_new, podnet_sandbox_spec_free, spec, long_name, 128);

    CHECK_OK(podnet_sandbox_spec_new("s-1", &spec, &err));
    spec_keep = spec;
    REFUSED_STRING(podnet_sandbox_spec_set_ifname, spec, "eth1", long_ifname);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_ifname, spec, "eth/0", &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_ifname, spec, "", &err);
    REFUSED_STRING(podnet_sandbox_spec_set_mac, spec, "02:00:00:00:00:01", long_path);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_mac, spec, "03:00:00:00:00:01", &err); /* multicast */
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_mac, spec, "00:00:00:00:00:00", &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_mac, spec, "02:00:00:00:00", &err);
    REFUSED_STRING(podnet_sandbox_spec_set_netns_path, spec, "/x", long_path);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_netns_path, spec, "ns", &err);
    REFUSED_STRING(podnet_sandbox_spec_add_ip, spec, "10.1.0.7", NULL);
    REFUSED_CALL(ADDR, podnet_sandbox_spec_add_ip, spec, "10.1.0.", &err);
    REFUSED_CALL(ADDR, podnet_sandbox_spec_add_ip, spec, "010.1.0.7", &err);
    REFUSED_CALL(ADDR, podnet_sandbox_spec_add_ip, spec, "fd00:::1", &err);
    REFUSED_CALL(ADDR, podnet_sandbox_spec_add_ip, spec, "10.1.0.7/24", &err);
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, "10.1.0.7", &err));
    REFUSED_CALL(ARG, podnet_sandbox_spec_add_ip, spec, "10.1.0.8", &err);
    REFUSED_CALL(NUL, podnet_sandbox_spec_add_port, NULL, PODNET_PROTOCOL_TCP, NULL, 80, 8080, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_add_port, spec, 99, NULL, 80, 8080, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_add_port, spec, PODNET_PROTOCOL_TCP, NULL, 0, 8080, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_add_port, spec, PODNET_PROTOCOL_TCP, NULL, 80, 0, &err);
    REFUSED_CALL(ADDR, podnet_sandbox_spec_add_port, spec, PODNET_PROTOCOL_TCP, "1.2.3", 80, 80, &err);
    REFUSED_CALL(UTF, podnet_sandbox_spec_add_port, spec, PODNET_PROTOCOL_TCP, NOT_UTF8, 80, 80, &err);
    CHECK_OK(podnet_sandbox_spec_add_port(spec, PODNET_PROTOCOL_UDP, "192.168.1.1", 53, 53, &err));
    REFUSED_CALL(ARG, podnet_sandbox_spec_add_port, spec, PODNET_PROTOCOL_UDP, "192.168.1.1", 53, 5353, &err);
    CHECK(spec == spec_keep);
    podnet_sandbox_spec_free(spec);
    spec = NULL;
    REFUSED_CALL(NUL, podnet_sandbox_spec_set_ifname, spec, "eth1", &err);
    REFUSED_CALL(NUL, podnet_sandbox_spec_add_ip, spec, "10.1.0.7", &err);
    podnet_sandbox_spec_free(NULL);

    /* logging */
    REFUSED_CALL(ARG, podnet_set_log_callback, PODNET_LOG_LEVEL_TRACE + 1, NULL, NULL, &err);

    /* accessors on NULL or out of range */
    CHECK(podnet_sandbox_get_info(NULL) == NULL);
    CHECK_INT(podnet_sandbox_list_count(NULL), 0);
    CHECK(podnet_sandbox_list_at(NULL, 0) == NULL);
    CHECK(podnet_check_report_get_info(NULL) == NULL);
    CHECK(podnet_gc_report_get_info(NULL) == NULL);
    podnet_sandbox_free(NULL);
    podnet_sandbox_list_free(NULL);
    podnet_check_report_free(NULL);
    podnet_gc_report_free(NULL);
    podnet_node_free(NULL);
}

static void open_test_node(void) {
    podnet_node_config *cfg = NULL;
    CHECK_OK(podnet_node_config_new("ctest", &cfg, &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.88.0.0/24", &err));
    CHECK_OK(podnet_node_config_add_service_cidr(cfg, "10.96.0.0/16", &err));
    CHECK_OK(podnet_node_open(cfg, &test_node, &err));
    podnet_node_config_free(cfg);
}

static void close_test_node(void) {
    podnet_node_free(test_node);
    test_node = NULL;
}

int main(void) {
    memset(long_name, 'x', sizeof long_name - 1);
    memset(long_ifname, 'e', sizeof long_ifname - 1);
    memset(long_path, 'p', sizeof long_path - 1);
    long_path[0] = '/';

    RUN(test_version);
    RUN(test_status_str);
    RUN(test_error_object);
    RUN(test_bad_input_objects);
    RUN(test_bad_input_multinode_objects);
    RUN(test_service_builder);
    RUN(test_bad_input_cluster);
    RUN(test_plan);
    RUN(test_node_cidr_allocator);
    RUN(test_service_ip_allocator);
    RUN(test_agent);
    RUN(open_test_node);
    if (test_node != NULL) {
        RUN(test_bad_input_node);
        RUN(test_bad_input_multinode_node);
        RUN(test_node_lifecycle);
        RUN(test_idempotence);
        RUN(test_ports);
        RUN(test_labels);
        RUN(test_sandbox_mode);
        RUN(test_host_ports);
        RUN(test_peers);
        RUN(test_services);
        RUN(test_gc);
        RUN(test_concurrency);
        RUN(test_log_callback);
        RUN(test_panic_boundary);
    }
    RUN(close_test_node);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
