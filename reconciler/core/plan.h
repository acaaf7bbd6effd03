// plan(target, observed, store) -> Plan: typed operations in dependency order. Pure: no I/O.
#pragma once

#include <string>
#include <vector>

#include "reconciler/core/host_state.h"
#include "reconciler/core/target.h"

namespace edgeplane::core {

enum class Action : uint8_t { Create, Update, Delete };
enum class Kind : uint8_t {
  Namespace,
  Sysctl,
  Uplink,
  WireGuard,
  Peer,
  Route,
  NftTable,
  Forward,
  Certificate,
  Site,  // the proxy's routes: diffed against the last published snapshot
  Passthrough,
  Gateway,
  ApiKey,  // the gateways' API keys: diffed against the last published snapshot's
};

std::string_view toString(Action a);
std::string_view toString(Kind k);

struct FieldChange {
  std::string field;
  std::string before;  // empty on create
  std::string after;   // empty on delete
  bool operator==(const FieldChange&) const = default;
};

struct Op {
  Action action = Action::Create;
  Kind kind = Kind::Namespace;
  std::string name;   // tenant name, "host", "<tenant> <prefix>", or a forward's name
  std::string scope;  // tenant namespace the op works in; empty for the host
  std::vector<FieldChange> changes;
  std::string drift;    // why an op exists although the config did not change
  std::string summary;  // one line for the header: "self-signed, 2 domains"
  // Known to fail before anything runs (a "files" certificate that does not parse, match its
  // key or cover its domains): shown in the plan, and apply fails the op with it.
  std::string error;
  std::vector<size_t> dependsOn;  // indices into Plan::ops; a failed one fails this one
  // An ACME certificate op: true when apply must first put the self-signed placeholder in
  // place (there is no usable certificate); the order itself runs after the first snapshot.
  bool placeholder = false;
  bool operator==(const Op&) const = default;
};

struct Plan {
  std::string host;
  std::vector<Op> ops;               // apply in this order
  std::vector<std::string> foreign;  // seen and left alone
  // Facts about the host an operator should know, that no op changes ("api_key k is blocked
  // on this host …"). Not changes: a plan with notes only is empty.
  std::vector<std::string> notes;
  Target target;  // what applying the ops converges to
  // Desired namespaces that could not be observed (NetnsView::unobservable): their one op fails
  // with the reason and its dependents are skipped. The host table's mappings into them are
  // kept exactly as observed (`heldHostMappings`), so their traffic is not cut meanwhile.
  std::vector<std::string> unobservable;
  std::vector<PortMapping> heldHostMappings;

  size_t count(Action a) const;
  // Ops known to fail before anything runs (Op::error).
  size_t failing() const;
  // What the host's nftables table converges to: the target's, except that the mappings into
  // unobservable namespaces stay as observed.
  NftTableView hostTable() const;
  bool empty() const { return ops.empty(); }
};

Plan plan(const Target& target, const HostState& observed, const StoreView& store);

// The certificate and proxy route ops (plan_proxy.cpp), appended after the system ops:
// certificates are materialised before the snapshot that names them is published.
void planProxy(const Target& target, const HostState& observed, const StoreView& store, Plan& p);

// How renderText writes: plain text (a pipe, a log, NO_COLOR), or for a terminal with the
// symbols coloured as Terraform does (`+` green, `~` yellow, `-` and `!` red) by the sequences
// of schema/terminal_text.h, every text from the config or the host then escaped by
// terminalLines so that those sequences are the only escapes in it.
enum class TextStyle { Plain, Colour };

// Terraform-style text: one block per op, `+ ~ -`, changed fields, drift notes, foreign
// resources, and the summary line. Never contains secrets (the model holds none).
std::string renderText(const Plan& p, TextStyle style = TextStyle::Plain);
// {"format_version":1,"host":…,"resource_changes":[{"action","kind","name","scope","summary","changes":[…],
//  "drift","error","depends_on"}],
//  "foreign":[…],"notes":[…],"summary":{"add","change","destroy"}}
std::string renderJson(const Plan& p);

std::string jsonEscape(std::string_view s);

}  // namespace edgeplane::core
