/* SPDX-License-Identifier: MIT */
#pragma once

/* _cleanup_ for the libmnl and libnftnl objects, once for every module that builds or sends them. */

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "cleanup.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct mnl_socket *, mnl_socket_close)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_table *, nftnl_table_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_chain *, nftnl_chain_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_rule *, nftnl_rule_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_set *, nftnl_set_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_obj *, nftnl_obj_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct nftnl_udata_buf *, nftnl_udata_buf_free)
