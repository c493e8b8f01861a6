//go:build podnet_real_ocicni

package ocicni

import "github.com/cri-o/ocicni/pkg/ocicni"

// With `-tags podnet_real_ocicni` (the program's go.mod requires github.com/cri-o/ocicni) the
// types are ocicni's own, and Plugin is checked against the real interface.
type (
	CNIPlugin       = ocicni.CNIPlugin
	PortMapping     = ocicni.PortMapping
	IpRange         = ocicni.IpRange //nolint:revive // ocicni's name
	BandwidthConfig = ocicni.BandwidthConfig
	RuntimeConfig   = ocicni.RuntimeConfig
	NetAttachment   = ocicni.NetAttachment
	PodNetwork      = ocicni.PodNetwork
	NetResult       = ocicni.NetResult
)

var _ ocicni.CNIPlugin = (*Plugin)(nil)
