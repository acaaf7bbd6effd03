// WireGuard kernel backend: `type wireguard` links over rtnetlink, configured over generic
// netlink (WG_CMD_*, wg_genl_codec.h); the link helpers both backends share.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "reconciler/system/rtnl_codec.h"
#include "reconciler/system/wireguard.h"
#include "schema/result.h"

namespace edgeplane::sys {

// The link named `ifname` in `netns` ("" = the current namespace), without its addresses,
// whichever backend runs it (kind "wireguard", or wireguard-go's "tun"). std::nullopt when
// there is none.
Result<std::optional<LinkInfo>> wgLinkGet(std::string_view netns, std::string_view ifname);
// Deletes the link; an absent one is AlreadyAbsent.
Result<WgRemoval> wgLinkDelete(std::string_view netns, std::string_view ifname);

// The kernel backend: `type wireguard` links, configured over generic netlink from a socket
// opened in the interface's namespace (the family is per network namespace).
std::unique_ptr<WgBackend> makeNetlinkBackend();

}  // namespace edgeplane::sys
