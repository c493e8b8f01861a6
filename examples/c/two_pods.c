/*
 * two_pods: a container runtime's view of podnet's C API, end to end.
 *
 * Opens a node on the current network namespace, creates two pods, prints their addresses,
 * proves they can talk over TCP (pod-b connects to a server in pod-a, which reports the source
 * address it saw), then deletes both pods and closes the node.
 *
 * Run it as root in a throwaway world, as `make c-example` does:
 *
 *   unshare --net --mount --propagation private -- \
 *     sh -c 'mount -t tmpfs tmpfs /run && exec ./two_pods'
 *
 * (a new netns plays the node; tmpfs on /run holds the pods' netns pins and podnet's state).
 *
 * podnet itself never forks or changes a thread's namespace. Running something *inside* a pod
 * is the runtime's business: here a forked child enters the pod's netns with setns(2). The
 * parent has threads (podnet's), so a child only makes async-signal-safe calls before _exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <podnet.h>

#define PORT 8080

static const char *level_name(podnet_log_level level) {
    switch (level) {
    case PODNET_LOG_LEVEL_ERROR: return "error";
    case PODNET_LOG_LEVEL_WARN: return "warn";
    case PODNET_LOG_LEVEL_INFO: return "info";
    case PODNET_LOG_LEVEL_DEBUG: return "debug";
    default: return "trace";
    }
}

/* The runtime's logger: podnet calls it from its own threads too, so it must be thread-safe
 * (stdio's locking is enough here). */
static void log_to_stderr(void *user_data, podnet_log_level level, const char *target,
                          const char *message) {
    (void)user_data;
    fprintf(stderr, "[%s %s] %s\n", level_name(level), target, message);
}

/* Report a failed call, free its error, return 1. */
static int fail(const char *what, podnet_status status, podnet_error *err) {
    fprintf(stderr, "two_pods: %s failed: %s (status %s, errno %d)\n", what,
            err ? podnet_error_message(err) : "-", podnet_status_str(status),
            err ? podnet_error_errno(err) : 0);
    podnet_error_free(err);
    return 1;
}

/* "10.244.1.2/24" -> in_addr */
static int parse_ip(const char *cidr, struct in_addr *out) {
    char buf[64];
    char *slash;
    snprintf(buf, sizeof buf, "%s", cidr);
    slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    return inet_pton(AF_INET, buf, out) == 1 ? 0 : -1;
}

/* In a child: enter the pod's netns. */
static void enter_netns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(10);
    close(fd);
}

/* Child in pod-a: listen, say "ready" on `ready_fd`, accept one connection, send the peer's
 * address back to the parent on `report_fd` and "pong" to the peer. */
static void run_server(const char *netns, struct in_addr ip, int ready_fd, int report_fd) {
    struct sockaddr_in addr, peer;
    socklen_t peer_len = sizeof peer;
    char buf[64];
    int one = 1, s, c;
    alarm(10);
    enter_netns(netns);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) _exit(11);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(PORT);
    addr.sin_addr = ip;
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 1) != 0) _exit(12);
    if (write(ready_fd, "r", 1) != 1) _exit(13);
    c = accept(s, (struct sockaddr *)&peer, &peer_len);
    if (c < 0) _exit(14);
    if (read(c, buf, sizeof buf) <= 0) _exit(15);
    if (write(c, "pong", 4) != 4) _exit(16);
    if (write(report_fd, &peer.sin_addr, sizeof peer.sin_addr) != sizeof peer.sin_addr) _exit(17);
    close(c);
    close(s);
    _exit(0);
}

/* Child in pod-b: connect to pod-a, send "ping", pass the reply to the parent. */
static void run_client(const char *netns, struct in_addr server, int report_fd) {
    struct sockaddr_in addr;
    char buf[16];
    ssize_t n;
    int s;
    alarm(10);
    enter_netns(netns);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) _exit(21);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(PORT);
    addr.sin_addr = server;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) _exit(22);
    if (write(s, "ping", 4) != 4) _exit(23);
    n = read(s, buf, sizeof buf);
    if (n <= 0) _exit(24);
    if (write(report_fd, buf, (size_t)n) != n) _exit(25);
    close(s);
    _exit(0);
}

/* Read up to `len` bytes from `fd`, waiting at most 10 s. */
static ssize_t read_timeout(int fd, void *buf, size_t len) {
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    if (poll(&p, 1, 10000) != 1) return -1;
    return read(fd, buf, len);
}

static int child_ok(pid_t pid, const char *who) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "two_pods: %s child failed (wait status 0x%x)\n", who, (unsigned)status);
        return 0;
    }
    return 1;
}

/* Run the TCP exchange between the pods; returns 0 on success. */
static int talk(const podnet_sandbox *sa, const podnet_sandbox *sb) {
    /* Every field of a sandbox in one call; the strings live as long as the sandbox. */
    const podnet_sandbox_info *a = podnet_sandbox_get_info(sa), *b = podnet_sandbox_get_info(sb);
    struct in_addr ip_a, ip_b, seen;
    int ready[2], report[2], reply[2], ok = 1;
    char pong[16] = "";
    char seen_str[INET_ADDRSTRLEN] = "?";
    pid_t server, client;

    if (parse_ip(a->ips.items[0], &ip_a) != 0 || parse_ip(b->ips.items[0], &ip_b) != 0)
        return 1;
    if (pipe(ready) != 0 || pipe(report) != 0 || pipe(reply) != 0) return 1;
    fflush(NULL);
    server = fork();
    if (server == 0) run_server(a->netns_path, ip_a, ready[1], report[1]);
    if (server < 0) return 1;
    if (read_timeout(ready[0], pong, 1) != 1) {
        fprintf(stderr, "two_pods: the server in %s did not start\n", a->id);
        ok = 0;
    } else {
        client = fork();
        if (client == 0) run_client(b->netns_path, ip_a, reply[1]);
        if (client < 0) return 1;
        memset(pong, 0, sizeof pong);
        if (read_timeout(reply[0], pong, sizeof pong - 1) <= 0 || strcmp(pong, "pong") != 0) ok = 0;
        if (read_timeout(report[0], &seen, sizeof seen) != (ssize_t)sizeof seen) ok = 0;
        else inet_ntop(AF_INET, &seen, seen_str, sizeof seen_str);
        ok &= child_ok(client, "client");
    }
    ok &= child_ok(server, "server");
    close(ready[0]), close(ready[1]), close(report[0]), close(report[1]), close(reply[0]), close(reply[1]);
    printf("TCP %s -> %s:%d: reply \"%s\", server saw the client as %s\n", b->id,
           a->ips.items[0], PORT, pong, seen_str);
    if (ok && seen.s_addr != ip_b.s_addr) {
        fprintf(stderr, "two_pods: the server saw %s, not pod-b's address\n", seen_str);
        ok = 0;
    }
    return ok ? 0 : 1;
}

static void show(const podnet_sandbox *sandbox) {
    const podnet_sandbox_info *sb = podnet_sandbox_get_info(sandbox);
    size_t i;
    printf("%s: netns %s, %s <-> host %s, mac %s, mode %s\n", sb->id, sb->netns_path, sb->ifname,
           sb->host_ifname, sb->mac, sb->mode == PODNET_MODE_BRIDGE ? "bridge" : "routed");
    for (i = 0; i < sb->ips.count; i++)
        printf("  ip %s via %s\n", sb->ips.items[i], sb->gateways.items[i]);
}

int main(void) {
    podnet_node_config *cfg = NULL;
    podnet_node *node = NULL;
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *pods[2] = {NULL, NULL};
    const char *ids[2] = {"pod-a", "pod-b"};
    podnet_error *err = NULL;
    podnet_status st;
    int i, rc = 1;

    printf("podnet %s (header %s)\n", podnet_version(), PODNET_VERSION);
    st = podnet_set_log_callback(PODNET_LOG_LEVEL_INFO, log_to_stderr, NULL, &err);
    if (st != PODNET_STATUS_OK) return fail("podnet_set_log_callback", st, err);

    /* The node: this process's netns, one IPv4 pod CIDR, bridge mode (the defaults). */
    st = podnet_node_config_new("example", &cfg, &err);
    if (st == PODNET_STATUS_OK) st = podnet_node_config_add_pod_cidr(cfg, "10.244.1.0/24", &err);
    if (st == PODNET_STATUS_OK) st = podnet_node_open(cfg, &node, &err);
    podnet_node_config_free(cfg); /* the node keeps a copy */
    if (st != PODNET_STATUS_OK) return fail("open node", st, err);

    for (i = 0; i < 2; i++) {
        st = podnet_sandbox_spec_new(ids[i], &spec, &err);
        if (st == PODNET_STATUS_OK) st = podnet_node_sandbox_create(node, spec, &pods[i], &err);
        podnet_sandbox_spec_free(spec);
        spec = NULL;
        if (st != PODNET_STATUS_OK) {
            fail("create sandbox", st, err);
            goto teardown;
        }
        show(pods[i]);
    }
    rc = talk(pods[0], pods[1]);

teardown:
    for (i = 0; i < 2; i++) {
        err = NULL;
        st = podnet_node_sandbox_delete(node, ids[i], &err);
        if (st != PODNET_STATUS_OK) rc = fail("delete sandbox", st, err);
        podnet_sandbox_free(pods[i]);
    }
    podnet_node_free(node);
    podnet_set_log_callback(PODNET_LOG_LEVEL_OFF, NULL, NULL, NULL);
    printf("%s\n", rc == 0 ? "two_pods: ok" : "two_pods: FAILED");
    return rc;
}
