// Package ocicni implements CRI-O's ocicni.CNIPlugin interface (github.com/cri-o/ocicni,
// package pkg/ocicni) over the in-process podnet library: no plugin binary is exec'd, no
// config file is read; every pod is a podnet sandbox on one *podnet.Node.
//
// A CRI-O fork switches with one constructor:
//
//	// before: plugin, err := ocicni.InitCNI(defaultNet, confDir, binDirs...)
//	plugin, err := podnetocicni.Open(podnet.NodeConfig{Name: "node1", PodCIDRs: cidrs}, podnetocicni.Options{})
//
// (or New over a *podnet.Node the program already has). Everything else keeps calling the
// ocicni.CNIPlugin methods.
//
// Mapping. Each attachment of a PodNetwork (its Networks, or one attachment of the plugin's
// network on eth0 when empty) becomes a sandbox in the runtime's netns (PodNetwork.NetNS),
// named and labelled as the podnet-cni plugin does: id = PodNetwork.ID for eth0, labels
// cni.network, cni.container_id, cni.ifname, k8s.pod.namespace, k8s.pod.name, k8s.pod.uid.
// RuntimeConfig[network] gives the host ports (PortMappings, with HostIP) and a requested
// address (IP) and the pod interface's MAC; Bandwidth and IpRanges are refused with an error
// (podnet has no such setting), CgroupPath and PodAnnotations are ignored. Results are CNI 1.0.0 results
// (*types100.Result): the interface in the netns, the addresses, gateways and default routes.
//
// Context. Every call that can block takes a context (the methods without one use
// context.Background()). The context is checked before each step, never during one: a
// create that has started runs to completion, or the library rolls it back when it fails.
// When the context ends between two steps (between the attachments of a pod, or after the
// last create), SetUpPodWithContext deletes what it created and returns the context's error:
// a pod is set up whole or not at all. A teardown stopped by its context is finished by
// calling it again (deletes are idempotent).
//
// Types. The Go module proxy this project builds from does not serve github.com/cri-o/ocicni,
// so the package declares ocicni's types itself (types.go, same names and fields). Build with
// `-tags podnet_real_ocicni` in a program whose go.mod requires the real module: the types
// become aliases of ocicni's and `var _ ocicni.CNIPlugin = (*Plugin)(nil)` is checked against
// it (types_real.go).
package ocicni

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/attach"
)

// DefaultNetworkName is the network name when Options.NetworkName is empty (the `name` of
// the conflist in docs/cni.md).
const DefaultNetworkName = attach.DefaultNetworkName

// Options configures a Plugin.
type Options struct {
	// NetworkName is the plugin's network (GetDefaultNetworkName, the cni.network label);
	// default DefaultNetworkName.
	NetworkName string
}

// Plugin is an ocicni.CNIPlugin over a podnet node. It is safe for concurrent use.
type Plugin struct{ b *attach.Base }

// New returns a plugin over node; Shutdown leaves the node open (the caller closes it).
func New(node *podnet.Node, opts Options) *Plugin {
	return &Plugin{attach.NewBase(node, opts.NetworkName)}
}

// Open opens a node with cfg and returns a plugin over it; Shutdown closes the node.
func Open(cfg podnet.NodeConfig, opts Options) (*Plugin, error) {
	return attach.OpenBase(cfg, opts.NetworkName, func(b *attach.Base) *Plugin { return &Plugin{b} })
}

// Node is the plugin's node.
func (p *Plugin) Node() *podnet.Node { return p.b.Node }

// Name returns "podnet".
func (p *Plugin) Name() string { return "podnet" }

// GetDefaultNetworkName returns the plugin's network name.
func (p *Plugin) GetDefaultNetworkName() string { return p.b.Network }

// attachments are the pod's attachments: its Networks, or the plugin's network on eth0.
func (p *Plugin) attachments(pod *PodNetwork) ([]NetAttachment, error) {
	if len(pod.Networks) == 0 {
		return []NetAttachment{{Name: p.b.Network, Ifname: attach.DefaultIfName}}, nil
	}
	out := make([]NetAttachment, 0, len(pod.Networks))
	for i, a := range pod.Networks {
		if a.Name != "" && a.Name != p.b.Network {
			return nil, fmt.Errorf("podnet ocicni: pod %s/%s: unknown network %q (this plugin serves %q)",
				pod.Namespace, pod.Name, a.Name, p.b.Network)
		}
		a.Name = p.b.Network
		if a.Ifname == "" {
			a.Ifname = fmt.Sprintf("eth%d", i)
		}
		out = append(out, a)
	}
	return out, nil
}

func (p *Plugin) ids(pod *PodNetwork) ([]NetAttachment, []string, error) {
	atts, err := p.attachments(pod)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(atts))
	for i, a := range atts {
		ids[i] = attach.SandboxID(pod.ID, a.Ifname)
	}
	return atts, ids, nil
}

// request maps one attachment of the pod to a create request.
func (p *Plugin) request(pod *PodNetwork, a NetAttachment) (attach.Request, error) {
	r := attach.Request{
		Network:     p.b.Network,
		ContainerID: pod.ID,
		IfName:      a.Ifname,
		NetnsPath:   pod.NetNS,
		Labels: map[string]string{
			attach.LabelPodNS:   pod.Namespace,
			attach.LabelPodName: pod.Name,
			attach.LabelPodUID:  pod.UID,
		},
	}
	rc, ok := pod.RuntimeConfig[a.Name]
	if !ok {
		return r, nil
	}
	bad := func(what string) (attach.Request, error) {
		return r, fmt.Errorf("podnet ocicni: pod %s/%s: %s is not supported", pod.Namespace, pod.Name, what)
	}
	switch {
	case rc.Bandwidth != nil:
		return bad("bandwidth limiting")
	case len(rc.IpRanges) > 0:
		return bad("ipRanges (the node's pod CIDRs are the ranges)")
	}
	if rc.MAC != "" {
		mac, err := net.ParseMAC(rc.MAC)
		if err != nil {
			return r, fmt.Errorf("podnet ocicni: pod %s/%s: MAC %q: %w", pod.Namespace, pod.Name, rc.MAC, err)
		}
		r.MAC = mac
	}
	if rc.IP != "" {
		ip, err := attach.ParseIP(rc.IP)
		if err != nil {
			return r, fmt.Errorf("podnet ocicni: %w", err)
		}
		r.IPs = []netip.Addr{ip}
	}
	for _, m := range rc.PortMappings {
		pm, err := attach.PortMapping(m.HostPort, m.ContainerPort, m.Protocol, m.HostIP)
		if err != nil {
			return r, fmt.Errorf("podnet ocicni: %w", err)
		}
		r.Ports = append(r.Ports, pm)
	}
	return r, nil
}

func results(atts []NetAttachment, sbs []*podnet.Sandbox) []NetResult {
	out := make([]NetResult, len(sbs))
	for i, sb := range sbs {
		out[i] = NetResult{NetAttachment: atts[i], Result: attach.Result(sb)}
	}
	return out
}

// SetUpPod is SetUpPodWithContext with context.Background().
func (p *Plugin) SetUpPod(network PodNetwork) ([]NetResult, error) {
	return p.SetUpPodWithContext(context.Background(), network)
}

// SetUpPodWithContext creates the pod's sandboxes in its netns: all of them, or none (see the
// package docs on the context). Calling it again for a pod already set up returns the same
// results; a different setup for the same pod gives podnet.ErrAlreadyExists.
func (p *Plugin) SetUpPodWithContext(ctx context.Context, network PodNetwork) ([]NetResult, error) {
	if network.NetNS == "" {
		return nil, fmt.Errorf("podnet ocicni: pod %s/%s: no network namespace", network.Namespace, network.Name)
	}
	atts, err := p.attachments(&network)
	if err != nil {
		return nil, err
	}
	reqs := make([]attach.Request, len(atts))
	for i, a := range atts {
		if reqs[i], err = p.request(&network, a); err != nil {
			return nil, err
		}
	}
	sbs, err := attach.SetUp(ctx, p.b.Node, reqs)
	if err != nil {
		return nil, err
	}
	return results(atts, sbs), nil
}

// TearDownPod is TearDownPodWithContext with context.Background().
func (p *Plugin) TearDownPod(network PodNetwork) error {
	return p.TearDownPodWithContext(context.Background(), network)
}

// TearDownPodWithContext deletes the pod's sandboxes: their addresses, host ports and veths
// (the runtime's netns stays; it is the runtime's). Idempotent, and works when the netns is
// already gone.
func (p *Plugin) TearDownPodWithContext(ctx context.Context, network PodNetwork) error {
	_, ids, err := p.ids(&network)
	if err != nil {
		return err
	}
	return attach.TearDown(ctx, p.b.Node, ids)
}

// GetPodNetworkStatus is GetPodNetworkStatusWithContext with context.Background().
func (p *Plugin) GetPodNetworkStatus(network PodNetwork) ([]NetResult, error) {
	return p.GetPodNetworkStatusWithContext(context.Background(), network)
}

// GetPodNetworkStatusWithContext returns the results of the pod's attachments from their
// records; a pod not set up gives an error matching podnet.ErrNotFound.
func (p *Plugin) GetPodNetworkStatusWithContext(ctx context.Context, network PodNetwork) ([]NetResult, error) {
	atts, ids, err := p.ids(&network)
	if err != nil {
		return nil, err
	}
	sbs, err := attach.Get(ctx, p.b.Node, ids)
	if err != nil {
		return nil, err
	}
	return results(atts, sbs), nil
}

// GC deletes the sandboxes of the plugin's network that belong to none of validPods. Other
// sandboxes of the node (other networks, the CLI, other programs) are left alone.
func (p *Plugin) GC(ctx context.Context, validPods []*PodNetwork) error {
	keep := map[string]bool{}
	for _, pod := range validPods {
		if pod == nil {
			continue
		}
		_, ids, err := p.ids(pod)
		if err != nil {
			return err
		}
		for _, id := range ids {
			keep[id] = true
		}
	}
	return attach.GC(ctx, p.b.Node, p.b.Network, keep)
}

// Status is StatusWithContext with context.Background().
func (p *Plugin) Status() error { return p.StatusWithContext(context.Background()) }

// StatusWithContext is nil when the node is open and answers.
func (p *Plugin) StatusWithContext(ctx context.Context) error {
	if err := attach.Status(ctx, p.b.Node); err != nil {
		return fmt.Errorf("podnet ocicni: not ready: %w", err)
	}
	return nil
}

// Shutdown closes the node when Open made it (idempotent); the pods stay.
func (p *Plugin) Shutdown() error { return p.b.Close() }
