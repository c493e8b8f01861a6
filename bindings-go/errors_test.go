package podnet_test

// Tests that need no root: versions, codes, errors, and every argument the library (or the
// Go side) refuses before touching the kernel.

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	podnet "github.com/podnet/podnet/bindings-go"
)

func TestVersion(t *testing.T) {
	if got := podnet.Version(); got != podnet.HeaderVersion {
		t.Errorf("Version() = %q, header says %q", got, podnet.HeaderVersion)
	}
	cargo, err := os.ReadFile(filepath.Join("..", "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?ms)^\[workspace\.package\].*?^version\s*=\s*"([^"]+)"`).FindSubmatch(cargo)
	if m == nil {
		t.Fatal("no [workspace.package] version in Cargo.toml")
	}
	if string(m[1]) != podnet.Version() {
		t.Errorf("Cargo.toml says %s, the library %s", m[1], podnet.Version())
	}
}

func TestCodeNames(t *testing.T) {
	for code, want := range map[podnet.Code]string{
		podnet.CodeOK:              "ok",
		podnet.CodeNotFound:        "not_found",
		podnet.CodeInvalidAddress:  "invalid_address",
		podnet.CodeInvalidArgument: "invalid_argument",
		podnet.CodeNotReady:        "not_ready",
		podnet.Code(99999):         "unknown",
	} {
		if got := code.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", uint32(code), got, want)
		}
	}
}

func TestSentinels(t *testing.T) {
	sentinels := map[podnet.Code]error{
		podnet.CodeInvalidArgument: podnet.ErrInvalidArgument,
		podnet.CodeNullArgument:    podnet.ErrNullArgument,
		podnet.CodeInvalidUTF8:     podnet.ErrInvalidUTF8,
		podnet.CodeNotFound:        podnet.ErrNotFound,
		podnet.CodeAlreadyExists:   podnet.ErrAlreadyExists,
		podnet.CodeExhausted:       podnet.ErrExhausted,
		podnet.CodeConflict:        podnet.ErrConflict,
		podnet.CodePermission:      podnet.ErrPermission,
		podnet.CodeKernel:          podnet.ErrKernel,
		podnet.CodeIO:              podnet.ErrIO,
		podnet.CodeInconsistent:    podnet.ErrInconsistent,
		podnet.CodeInternal:        podnet.ErrInternal,
		podnet.CodePanic:           podnet.ErrPanic,
		podnet.CodeTooLong:         podnet.ErrTooLong,
		podnet.CodeInvalidAddress:  podnet.ErrInvalidAddress,
		podnet.CodeNotReady:        podnet.ErrNotReady,
	}
	for code, sentinel := range sentinels {
		err := error(&podnet.Error{Code: code, Op: "op", Message: "op: cause"})
		wrapped := errors.Join(errors.New("context"), err)
		for other, s := range sentinels {
			if got, want := errors.Is(wrapped, s), other == code; got != want {
				t.Errorf("errors.Is(<%s>, sentinel of %s) = %v", code, other, got)
			}
		}
		if !errors.Is(err, sentinel) || errors.Is(err, podnet.ErrClosed) {
			t.Errorf("%s: sentinel mismatch", code)
		}
		if sentinel.Error() == "" || !strings.HasPrefix(sentinel.Error(), "podnet: ") {
			t.Errorf("sentinel of %s: message %q", code, sentinel.Error())
		}
	}
	// The errno is the wrapped error.
	err := error(&podnet.Error{Code: podnet.CodeIO, Op: "op", Message: "op: gone", Errno: syscall.ENOENT})
	if !errors.Is(err, syscall.ENOENT) || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, podnet.ErrIO) {
		t.Errorf("errno not reachable through %v", err)
	}
	if got := err.Error(); got != "podnet: op: gone" {
		t.Errorf("Error() = %q", got)
	}
}

// refused asserts err is an *podnet.Error with code want and a message and operation.
func refused(t *testing.T, what string, err error, want podnet.Code, op string) {
	t.Helper()
	var pe *podnet.Error
	switch {
	case err == nil:
		t.Errorf("%s: accepted, want %s", what, want)
	case !errors.As(err, &pe):
		t.Errorf("%s: %v (%T), want a *podnet.Error", what, err, err)
	case pe.Code != want:
		t.Errorf("%s: code %s (%v), want %s", what, pe.Code, err, want)
	case pe.Message == "" || pe.Op == "":
		t.Errorf("%s: empty message or operation: %#v", what, pe)
	case op != "" && pe.Op != op:
		t.Errorf("%s: operation %q, want %q", what, pe.Op, op)
	}
}

func TestConfigRefused(t *testing.T) {
	cidr := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}
	long := strings.Repeat("n", 129)
	for _, c := range []struct {
		what string
		cfg  podnet.NodeConfig
		code podnet.Code
		op   string
	}{
		{"no name", podnet.NodeConfig{PodCIDRs: cidr}, podnet.CodeInvalidArgument, "podnet_node_config_new"},
		{"bad name", podnet.NodeConfig{Name: "a/b", PodCIDRs: cidr}, podnet.CodeInvalidArgument, "podnet_node_config_new"},
		{"dot-dot name", podnet.NodeConfig{Name: "a..b", PodCIDRs: cidr}, podnet.CodeInvalidArgument, ""},
		{"long name", podnet.NodeConfig{Name: long, PodCIDRs: cidr}, podnet.CodeTooLong, "podnet_node_config_new"},
		{"NUL in name", podnet.NodeConfig{Name: "a\x00b", PodCIDRs: cidr}, podnet.CodeInvalidArgument, ""},
		{"not UTF-8", podnet.NodeConfig{Name: "ab\xff", PodCIDRs: cidr}, podnet.CodeInvalidUTF8, ""},
		{"no pod CIDR", podnet.NodeConfig{Name: "n"}, podnet.CodeInvalidArgument, ""},
		{"zero pod CIDR", podnet.NodeConfig{Name: "n", PodCIDRs: []netip.Prefix{{}}}, podnet.CodeInvalidAddress, ""},
		{"host bits", podnet.NodeConfig{Name: "n", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}},
			podnet.CodeInvalidArgument, "podnet_node_config_add_pod_cidr"},
		{"two IPv4 CIDRs", podnet.NodeConfig{Name: "n", PodCIDRs: []netip.Prefix{
			netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")}}, podnet.CodeInvalidArgument, ""},
		{"range outside", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, IPRanges: []podnet.IPRange{{
			First: netip.MustParseAddr("10.9.0.10"), Last: netip.MustParseAddr("10.9.0.20")}}},
			podnet.CodeInvalidArgument, "podnet_node_config_set_ip_range"},
		{"range reversed", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, IPRanges: []podnet.IPRange{{
			First: netip.MustParseAddr("10.1.0.20"), Last: netip.MustParseAddr("10.1.0.10")}}},
			podnet.CodeInvalidArgument, ""},
		{"zero range", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, IPRanges: []podnet.IPRange{{}}},
			podnet.CodeInvalidAddress, ""},
		{"reserved outside", podnet.NodeConfig{Name: "n", PodCIDRs: cidr,
			ReservedIPs: []netip.Addr{netip.MustParseAddr("10.9.0.1")}}, podnet.CodeInvalidArgument,
			"podnet_node_config_add_reserved_ip"},
		{"mode", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, Mode: 7}, podnet.CodeInvalidArgument,
			"podnet_node_config_set_mode"},
		{"MTU", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, MTU: 100}, podnet.CodeInvalidArgument,
			"podnet_node_config_set_mtu"},
		{"bridge name", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, BridgeName: "br/0"},
			podnet.CodeInvalidArgument, "podnet_node_config_set_bridge_name"},
		{"long bridge name", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, BridgeName: "b234567890123456"},
			podnet.CodeTooLong, ""},
		{"relative netns path", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, NetnsPath: "run/netns/x"},
			podnet.CodeInvalidArgument, "podnet_node_config_set_netns_path"},
		{"relative netns dir", podnet.NodeConfig{Name: "n", PodCIDRs: cidr, NetnsDir: "netns"},
			podnet.CodeInvalidArgument, "podnet_node_config_set_netns_dir"},
	} {
		err := c.cfg.Validate()
		refused(t, c.what, err, c.code, c.op)
		// OpenNode checks the same before it touches anything (needs no root to refuse).
		node, err2 := podnet.OpenNode(c.cfg)
		if node != nil {
			node.Close()
			t.Errorf("%s: OpenNode accepted", c.what)
		} else if codeOf(t, err2) != c.code {
			t.Errorf("%s: OpenNode: %v, Validate: %v", c.what, err2, err)
		}
	}
	good := podnet.NodeConfig{
		Name:        "n",
		PodCIDRs:    []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd00:1::/64")},
		IPRanges:    []podnet.IPRange{{First: netip.MustParseAddr("10.1.0.10"), Last: netip.MustParseAddr("10.1.0.20")}},
		ReservedIPs: []netip.Addr{netip.MustParseAddr("10.1.0.15")},
		Mode:        podnet.ModeRouted,
		BridgeName:  "br0",
		MTU:         9000,
		NetnsPath:   "/run/netns/node",
		StateDir:    "/run/podnet-state",
		NetnsDir:    "/run/netns-pods",
	}
	if err := good.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

// A spec is checked before the node is used: a nil or closed node shows which comes first.
func TestSpecRefused(t *testing.T) {
	var closed *podnet.Node
	for _, c := range []struct {
		what string
		spec podnet.SandboxSpec
		code podnet.Code
		op   string
	}{
		{"no id", podnet.SandboxSpec{}, podnet.CodeInvalidArgument, "podnet_sandbox_spec_new"},
		{"bad id", podnet.SandboxSpec{ID: "../x"}, podnet.CodeInvalidArgument, "podnet_sandbox_spec_new"},
		{"long id", podnet.SandboxSpec{ID: strings.Repeat("i", 129)}, podnet.CodeTooLong, ""},
		{"NUL in id", podnet.SandboxSpec{ID: "a\x00"}, podnet.CodeInvalidArgument, ""},
		{"ifname", podnet.SandboxSpec{ID: "a", IfName: "eth/0"}, podnet.CodeInvalidArgument,
			"podnet_sandbox_spec_set_ifname"},
		{"long ifname", podnet.SandboxSpec{ID: "a", IfName: "e234567890123456"}, podnet.CodeTooLong, ""},
		{"relative netns", podnet.SandboxSpec{ID: "a", NetnsPath: "x"}, podnet.CodeInvalidArgument,
			"podnet_sandbox_spec_set_netns_path"},
		{"zero IP", podnet.SandboxSpec{ID: "a", IPs: []netip.Addr{{}}}, podnet.CodeInvalidAddress, ""},
		{"two IPv4", podnet.SandboxSpec{ID: "a", IPs: []netip.Addr{
			netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.1.0.6")}},
			podnet.CodeInvalidArgument, "podnet_sandbox_spec_add_ip"},
		{"protocol", podnet.SandboxSpec{ID: "a", Ports: []podnet.PortMapping{{HostPort: 80, ContainerPort: 80}}},
			podnet.CodeInvalidArgument, "podnet_sandbox_spec_add_port"},
		{"port 0", podnet.SandboxSpec{ID: "a", Ports: []podnet.PortMapping{
			{Protocol: podnet.ProtocolTCP, HostPort: 0, ContainerPort: 80}}}, podnet.CodeInvalidArgument, ""},
		{"port twice", podnet.SandboxSpec{ID: "a", Ports: []podnet.PortMapping{
			{Protocol: podnet.ProtocolTCP, HostPort: 8080, ContainerPort: 80},
			{Protocol: podnet.ProtocolTCP, HostPort: 8080, ContainerPort: 80}}}, podnet.CodeInvalidArgument, ""},
	} {
		_, err := closed.CreateSandbox(c.spec)
		refused(t, c.what, err, c.code, c.op)
	}
	ok := podnet.SandboxSpec{
		ID:        "a",
		IfName:    "net1",
		NetnsPath: "/run/netns/x",
		IPs:       []netip.Addr{netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("fd00::5")},
		Ports: []podnet.PortMapping{
			{Protocol: podnet.ProtocolTCP, HostPort: 8080, ContainerPort: 80},
			{Protocol: podnet.ProtocolUDP, HostIP: netip.MustParseAddr("10.0.0.1"), HostPort: 53, ContainerPort: 53},
		},
	}
	if _, err := closed.CreateSandbox(ok); !errors.Is(err, podnet.ErrClosed) {
		t.Errorf("valid spec on a nil node: %v, want ErrClosed", err)
	}
	for what, err := range map[string]error{
		"delete": closed.DeleteSandbox("a"),
		"get":    func() error { _, err := closed.GetSandbox("a"); return err }(),
		"list":   func() error { _, err := closed.ListSandboxes(); return err }(),
		"check":  func() error { _, err := closed.CheckSandbox("a"); return err }(),
		"gc":     func() error { _, err := closed.GC(nil); return err }(),
	} {
		if !errors.Is(err, podnet.ErrClosed) {
			t.Errorf("%s on a nil node: %v, want ErrClosed", what, err)
		}
	}
	if err := closed.Close(); err != nil {
		t.Errorf("Close of a nil node: %v", err)
	}
}

func TestSetLogFuncRefused(t *testing.T) {
	err := podnet.SetLogFunc(podnet.LogLevel(42), func(podnet.LogLevel, string, string) {})
	refused(t, "level 42", err, podnet.CodeInvalidArgument, "podnet_set_log_callback")
	if err := podnet.SetLogFunc(podnet.LogOff, nil); err != nil {
		t.Errorf("logging off: %v", err)
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		podnet.ModeBridge.String():       "bridge",
		podnet.ModeRouted.String():       "routed",
		podnet.Mode(9).String():          "mode(9)",
		podnet.ProtocolSCTP.String():     "sctp",
		podnet.Protocol(1).String():      "protocol(1)",
		podnet.LogTrace.String():         "trace",
		podnet.LogLevel(77).String():     "level(77)",
		podnet.CodeTooLong.String():      "too_long",
		podnet.ErrExhausted.Error():      "podnet: exhausted",
		podnet.ErrClosed.Error():         "podnet: node is closed",
		podnet.CodeInconsistent.String(): "inconsistent",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
