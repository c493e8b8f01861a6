// Package attach is what the runtime adapters (packages ocicni and gocni) share: how a CNI
// attachment (container id, interface, netns, pod metadata, capability args) becomes a podnet
// SandboxSpec, how a Sandbox becomes a CNI result, and the context rules of every call.
//
// The adapters name sandboxes and label them exactly as the podnet-cni plugin does
// (cni/src/conf.rs), so `podnet sandbox list` and the plugin's GC see a pod the same way
// whichever of the three made it.
//
// Context: a library call cannot be interrupted half-way, so the context is checked before
// each step, never during one. A create that has started runs to completion (or the library
// rolls it back on failure); when the context ends between two steps of one call, the
// sandboxes that call created are deleted before it returns the context's error. A call thus
// never leaves half a sandbox, nor half a pod.
package attach

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	podnet "github.com/podnet/podnet/bindings-go"
)

// Label keys, the same as the podnet-cni plugin's.
const (
	LabelNetwork     = "cni.network"
	LabelContainerID = "cni.container_id"
	LabelIfName      = "cni.ifname"
	LabelPodNS       = "k8s.pod.namespace"
	LabelPodName     = "k8s.pod.name"
	LabelPodUID      = "k8s.pod.uid"
	LabelInfraID     = "k8s.pod.infra_container_id"
)

// K8sArgs maps the CNI_ARGS keys CRI runtimes pass to the label keys kept on the sandbox.
var K8sArgs = map[string]string{
	"K8S_POD_NAMESPACE":          LabelPodNS,
	"K8S_POD_NAME":               LabelPodName,
	"K8S_POD_UID":                LabelPodUID,
	"K8S_POD_INFRA_CONTAINER_ID": LabelInfraID,
}

// DefaultNetworkName is an adapter's network name when none is given (the `name` of the
// conflist in docs/cni.md).
const DefaultNetworkName = "podnet"

// Base is what an adapter holds: its node, its network name, and whether closing the node is
// its business (Open made the node) or the caller's (New).
type Base struct {
	Node    *podnet.Node
	Network string
	owns    bool
	once    sync.Once
}

// NewBase is a Base over node (not owned); an empty network is DefaultNetworkName.
func NewBase(node *podnet.Node, network string) *Base {
	if network == "" {
		network = DefaultNetworkName
	}
	return &Base{Node: node, Network: network}
}

// OpenBase opens a node with cfg and returns the adapter (wrap: its constructor) over a Base
// owning it.
func OpenBase[T any](cfg podnet.NodeConfig, network string, wrap func(*Base) T) (T, error) {
	node, err := podnet.OpenNode(cfg)
	if err != nil {
		var zero T
		return zero, err
	}
	b := NewBase(node, network)
	b.owns = true
	return wrap(b), nil
}

// Close closes the node when the Base owns it (idempotent); the pods stay.
func (b *Base) Close() error {
	var err error
	if b.owns {
		b.once.Do(func() { err = b.Node.Close() })
	}
	return err
}

// CNIVersion is the version of the results the adapters return.
const CNIVersion = "1.0.0"

// DefaultIfName is the pod interface of the first (and usually only) attachment.
const DefaultIfName = "eth0"

// validID is podnet's id rule: [A-Za-z0-9_.-], 1..128 bytes, no "..".
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 || strings.Contains(s, "..") {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// SandboxID is the sandbox id of one attachment, as podnet-cni computes it: the container
// id itself for eth0 when it is a valid id, otherwise a readable prefix plus an FNV-1a hash of
// both, so two attachments never share an id.
func SandboxID(containerID, ifname string) string {
	if ifname == DefaultIfName && validID(containerID) {
		return containerID
	}
	h := fnv.New64a()
	h.Write([]byte(containerID + "\x00" + ifname))
	prefix := []rune(strings.ReplaceAll(containerID, "..", "_"))
	if len(prefix) > 80 {
		prefix = prefix[:80]
	}
	return fmt.Sprintf("%s_%s-%016x", string(prefix), strings.ReplaceAll(ifname, "..", "_"), h.Sum64())
}

// Request is one attachment to create.
type Request struct {
	// Network is the CNI network name (kept as a label: GC only touches its own network).
	Network     string
	ContainerID string
	IfName      string
	NetnsPath   string
	// Labels: pod metadata (K8sArgs' keys), merged with the adapter's own labels.
	Labels map[string]string
	Ports  []podnet.PortMapping
	IPs    []netip.Addr
	// MAC is a requested MAC for the pod interface (CNI's mac capability); nil: podnet's own.
	MAC net.HardwareAddr
}

// ID is the request's sandbox id.
func (r *Request) ID() string { return SandboxID(r.ContainerID, r.IfName) }

// Spec is the SandboxSpec of the request: the runtime's netns, its interface, ports,
// requested addresses and the labels.
func (r *Request) Spec() podnet.SandboxSpec {
	labels := map[string]string{
		LabelNetwork:     r.Network,
		LabelContainerID: r.ContainerID,
		LabelIfName:      r.IfName,
	}
	for k, v := range r.Labels {
		if v != "" {
			labels[k] = v
		}
	}
	return podnet.SandboxSpec{
		ID:        r.ID(),
		IfName:    r.IfName,
		NetnsPath: r.NetnsPath,
		IPs:       r.IPs,
		Ports:     r.Ports,
		Labels:    labels,
		MAC:       r.MAC,
	}
}

// PortMapping converts a runtime's port mapping (CNI's portMappings capability: host port,
// container port, "tcp"/"udp"/"sctp" (empty: tcp), host IP (empty: every node address)).
func PortMapping(hostPort, containerPort int32, protocol, hostIP string) (podnet.PortMapping, error) {
	var m podnet.PortMapping
	switch strings.ToLower(protocol) {
	case "", "tcp":
		m.Protocol = podnet.ProtocolTCP
	case "udp":
		m.Protocol = podnet.ProtocolUDP
	case "sctp":
		m.Protocol = podnet.ProtocolSCTP
	default:
		return m, fmt.Errorf("port mapping: unknown protocol %q", protocol)
	}
	if hostPort <= 0 || hostPort > 65535 || containerPort <= 0 || containerPort > 65535 {
		return m, fmt.Errorf("port mapping: ports %d:%d out of range", hostPort, containerPort)
	}
	m.HostPort, m.ContainerPort = uint16(hostPort), uint16(containerPort)
	if hostIP != "" && hostIP != "0.0.0.0" && hostIP != "::" {
		ip, err := netip.ParseAddr(hostIP)
		if err != nil {
			return m, fmt.Errorf("port mapping: host IP %q: %v", hostIP, err)
		}
		m.HostIP = ip
	}
	return m, nil
}

// ParseIP parses a requested pod address (a bare address, or one with a prefix length).
func ParseIP(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Errorf("requested IP %q: %v", s, err)
	}
	return a, nil
}

// SetUp creates the attachments in order. The context is checked before each create; when it
// has ended, or a create fails, the sandboxes this call created are deleted (with a context
// of their own: the rollback is not cancellable) and the error returned.
func SetUp(ctx context.Context, node *podnet.Node, reqs []Request) ([]*podnet.Sandbox, error) {
	var done []*podnet.Sandbox
	rollback := func(cause error) error {
		errs := []error{cause}
		for i := len(done) - 1; i >= 0; i-- {
			if err := node.DeleteSandbox(done[i].ID); err != nil {
				errs = append(errs, fmt.Errorf("roll back %s: %w", done[i].ID, err))
			}
		}
		if len(errs) == 1 {
			return cause
		}
		return errors.Join(errs...)
	}
	for i := range reqs {
		if err := ctx.Err(); err != nil {
			return nil, rollback(err)
		}
		sb, err := node.CreateSandbox(reqs[i].Spec())
		if err != nil {
			return nil, rollback(err)
		}
		done = append(done, sb)
	}
	// The last create may have finished after the deadline: the caller gave up, so the pod is
	// rolled back rather than reported set up to nobody.
	if err := ctx.Err(); err != nil {
		return nil, rollback(err)
	}
	return done, nil
}

// TearDown deletes the sandboxes (idempotent: an unknown id is success). The context is
// checked before each delete; a teardown stopped half-way is finished by calling it again.
func TearDown(ctx context.Context, node *podnet.Node, ids []string) error {
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := node.DeleteSandbox(id); err != nil {
			return err
		}
	}
	return nil
}

// Get reads the sandboxes of the attachments (ErrNotFound when one is missing).
func Get(ctx context.Context, node *podnet.Node, ids []string) ([]*podnet.Sandbox, error) {
	out := make([]*podnet.Sandbox, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sb, err := node.GetSandbox(id)
		if err != nil {
			return nil, err
		}
		out = append(out, sb)
	}
	return out, nil
}

// GC deletes the sandboxes of this network (label cni.network) whose id is not in keep, and
// leaves every other sandbox alone (other networks, the CLI, other clients of the node). It
// keeps going after an error and returns them all.
func GC(ctx context.Context, node *podnet.Node, network string, keep map[string]bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	list, err := node.ListSandboxes()
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list {
		if sb.Labels[LabelNetwork] != network || keep[sb.ID] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		if err := node.DeleteSandbox(sb.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Status is nil when the node answers (it is open and its state readable).
func Status(ctx context.Context, node *podnet.Node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := node.ListSandboxes()
	return err
}

// IPNet converts a prefix (an address with its prefix length) to net.IPNet.
func IPNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Gateway returns the sandbox's gateway of a's family, or nil.
func Gateway(sb *podnet.Sandbox, a netip.Addr) net.IP {
	for _, g := range sb.Gateways {
		if g.Is4() == a.Is4() {
			return g.AsSlice()
		}
	}
	return nil
}

// Result is the CNI result (version CNIVersion) of one sandbox: its interface in the netns,
// its addresses with their gateways and a default route per family.
func Result(sb *podnet.Sandbox) *types100.Result {
	r := &types100.Result{
		CNIVersion: CNIVersion,
		Interfaces: []*types100.Interface{{Name: sb.IfName, Mac: sb.MAC.String(), Sandbox: sb.NetnsPath}},
	}
	for _, p := range sb.IPs {
		idx := 0
		gw := Gateway(sb, p.Addr())
		r.IPs = append(r.IPs, &types100.IPConfig{Interface: &idx, Address: IPNet(p), Gateway: gw})
		if gw != nil {
			bits := p.Addr().BitLen()
			r.Routes = append(r.Routes, &types.Route{
				Dst: net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
				GW:  gw,
			})
		}
	}
	return r
}
