// Owners of libnftnl objects (unique_ptr with the matching free), for the nftables driver.
#pragma once

// libnftnl's headers use FILE without including <stdio.h>.
#include <cstdio>

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include <memory>

namespace edgeplane::sys::nft_detail {

struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct ElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprDeleter {
  void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct GenDeleter {
  void operator()(nftnl_gen* g) const { nftnl_gen_free(g); }
};
struct UdataDeleter {
  void operator()(nftnl_udata_buf* u) const { nftnl_udata_buf_free(u); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using ElemPtr = std::unique_ptr<nftnl_set_elem, ElemDeleter>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;
using GenPtr = std::unique_ptr<nftnl_gen, GenDeleter>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataDeleter>;

}  // namespace edgeplane::sys::nft_detail
