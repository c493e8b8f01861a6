/*
 * Sandbox create benchmark through the C ABI: opens a node on the current netns (run it in a
 * throwaway world: `make bench-c`), then COUNT times creates a sandbox, timing the create
 * (spec_new + sandbox_create + frees: what a C caller does per pod), and deletes it again
 * (untimed), so the node stays at a steady size. Prints one line per create: "c <microseconds>".
 * ffi/examples/bench_rust.rs runs the same workload in one process through both APIs.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <podnet.h>

#define WARMUP 5

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int check(const char *what, podnet_status st, podnet_error *err) {
    if (st == PODNET_STATUS_OK) return 0;
    fprintf(stderr, "bench_sandbox: %s: %s\n", what, err ? podnet_error_message(err) : podnet_status_str(st));
    podnet_error_free(err);
    exit(1);
}

/* Create sandbox `id`, return the time it took in microseconds. */
static double create(podnet_node *node, const char *id) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL;
    podnet_error *err = NULL;
    double t0 = now_us(), t1;
    check("spec", podnet_sandbox_spec_new(id, &spec, &err), err);
    check("create", podnet_node_sandbox_create(node, spec, &sb, &err), err);
    podnet_sandbox_free(sb);
    podnet_sandbox_spec_free(spec);
    t1 = now_us();
    return t1 - t0;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 200, i;
    podnet_node_config *cfg = NULL;
    podnet_node *node = NULL;
    podnet_error *err = NULL;
    double *us;
    char id[64];

    if (count < 1 || count > 60000) return 2;
    us = calloc((size_t)count, sizeof *us);
    if (us == NULL) return 2;
    check("config", podnet_node_config_new("bench", &cfg, &err), err);
    check("cidr", podnet_node_config_add_pod_cidr(cfg, "10.240.0.0/16", &err), err);
    check("open", podnet_node_open(cfg, &node, &err), err);
    podnet_node_config_free(cfg);
    for (i = 0; i < WARMUP; i++) {
        snprintf(id, sizeof id, "warm-%d", i);
        create(node, id);
        check("delete", podnet_node_sandbox_delete(node, id, &err), err);
    }
    for (i = 0; i < count; i++) {
        snprintf(id, sizeof id, "b-%d", i);
        us[i] = create(node, id);
        check("delete", podnet_node_sandbox_delete(node, id, &err), err);
    }
    podnet_node_free(node);
    for (i = 0; i < count; i++) printf("c %.1f\n", us[i]);
    free(us);
    return 0;
}
