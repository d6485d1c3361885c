/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/common.h>
#include <libnftnl/object.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "alloc.h"
#include "batch.h"
#include "cleanup.h"
#include "compile.h"
#include "netlink-cleanup.h"
#include "nft.h"
#include "summary.h"
#include "timeutil.h"

/* Kernel dump messages can be larger than a page: room for the largest. */
#define DUMP_BUFFER_SIZE 65536

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

#define RCVBUF_SIZE (4u * 1024u * 1024u)
#define ACK_TIMEOUT_MS 5000

struct ks_nft {
        struct mnl_socket *nl;
        uint32_t portid;
        uint32_t seq;
        size_t sndbuf;
        const atomic_bool *cancel;      /* set by another thread: stop a query between reads */
        struct nft_quiet quiet;         /* mute is NULL unless set */
};

void nft_set_quiet(struct ks_nft *n, const struct nft_quiet *q)
{
        n->quiet = *q;
}

void nft_set_cancel(struct ks_nft *n, const atomic_bool *cancel)
{
        n->cancel = cancel;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ks_nft *, nft_close)

int nft_open(struct ks_nft **ret)
{
        _cleanup_(nft_closep) struct ks_nft *n = NULL;
        int one = 1, rcv = RCVBUF_SIZE;

        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
        if (!n->nl || mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        n->portid = mnl_socket_get_portid(n->nl);
        n->seq = (uint32_t)time(NULL);
        /* Acks without the echoed request: errors are mapped back by sequence number. */
        mnl_socket_setsockopt(n->nl, NETLINK_CAP_ACK, &one, sizeof(one));
        if (setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
                setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        *ret = TAKE_PTR(n);
        return 0;
}

uint32_t nft_portid(const struct ks_nft *n)
{
        return n->portid;
}

struct ks_nft *nft_close(struct ks_nft *n)
{
        if (!n)
                return NULL;
        if (n->nl)
                mnl_socket_close(n->nl);
        free(n);
        return NULL;
}

static const char *msg_type_name(uint16_t type)
{
        switch (NFNL_MSG_TYPE(type)) {
        case NFT_MSG_NEWTABLE: return "add table";
        case NFT_MSG_DELTABLE: return "delete table";
        case NFT_MSG_NEWCHAIN: return "add chain";
        case NFT_MSG_NEWRULE: return "add rule";
        case NFT_MSG_NEWSET: return "add set";
        case NFT_MSG_NEWSETELEM: return "add set elements";
        case NFT_MSG_NEWOBJ: return "add counter";
        default: return "message";
        }
}

/* A transaction under construction: the batch and the range of sequence numbers in it. */
struct txn {
        struct nftnl_batch *batch;
        uint32_t first_seq;     /* seq of BATCH_BEGIN */
        uint32_t next_seq;
        const char *comment;    /* the new table's user data (ruleset_comment), or NULL */
};

static int txn_begin(struct ks_nft *n, struct txn *t)
{
        t->batch = batch_alloc();
        if (!t->batch)
                return -ENOMEM;
        t->first_seq = n->seq;
        t->next_seq = n->seq;
        nftnl_batch_begin(nftnl_batch_buffer(t->batch), t->next_seq++);
        batch_next(t->batch);
        return 0;
}

static void txn_end(struct ks_nft *n, struct txn *t)
{
        nftnl_batch_end(nftnl_batch_buffer(t->batch), t->next_seq++);
        batch_next(t->batch);
        n->seq = t->next_seq;
}

static int txn_table_comment(struct nftnl_table *tb, const char *comment)
{
        _cleanup_(nftnl_udata_buf_freep) struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(COMPILE_COMMENT_SIZE);

        if (!u || !nftnl_udata_put_strz(u, NFTNL_UDATA_TABLE_COMMENT, comment))
                return -ENOMEM;
        return nftnl_table_set_data(tb, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
}

/* NEWTABLE or DELTABLE of inet table `table`; with_flags: NEWTABLE with these table flags. */
static int txn_add_table(struct txn *t, uint16_t type, uint16_t nlflags, const char *table, bool with_flags,
                         uint32_t flags)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *tb = nftnl_table_alloc();
        struct nlmsghdr *nlh;

        if (!tb)
                return -ENOMEM;
        nftnl_table_set_str(tb, NFTNL_TABLE_NAME, table);
        if (with_flags)
                nftnl_table_set_u32(tb, NFTNL_TABLE_FLAGS, flags);
        /* The kernel keeps the user data of a table's creation only: this NEWTABLE creates it. */
        if (with_flags && t->comment && txn_table_comment(tb, t->comment) < 0)
                return -ENOMEM;
        nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(t->batch), type, NFPROTO_INET, nlflags | NLM_F_ACK,
                                    t->next_seq++);
        nftnl_table_nlmsg_build_payload(nlh, tb);
        return batch_next(t->batch) < 0 ? -ENOMEM : 0;
}

/* "table x; delete table x": removes the table whether or not it exists, in the same batch. */
static int txn_drop_table(struct txn *t, const char *table)
{
        int r = txn_add_table(t, NFT_MSG_NEWTABLE, NLM_F_CREATE, table, false, 0);

        return r < 0 ? r : txn_add_table(t, NFT_MSG_DELTABLE, 0, table, false, 0);
}

/* Make sure the socket can take the whole batch in one sendmsg. */
static void grow_sndbuf(struct ks_nft *n, size_t len)
{
        int size;

        if (len + 65536 <= n->sndbuf)
                return;
        size = (int)(len + 65536);
        if (setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) == 0)
                n->sndbuf = (size_t)size;
}

/* Record the message type of every seq in the batch, for error messages. */
static int txn_types(struct txn *t, struct iovec *iov, int iovlen, uint16_t **ret)
{
        uint32_t count = t->next_seq - t->first_seq;
        uint16_t *types = calloc(count, sizeof(*types));

        if (!types)
                return -ENOMEM;
        for (int i = 0; i < iovlen; i++) {
                const struct nlmsghdr *nlh = iov[i].iov_base;
                int len = (int)iov[i].iov_len;

                for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                        if (nlh->nlmsg_seq - t->first_seq < count)
                                types[nlh->nlmsg_seq - t->first_seq] = nlh->nlmsg_type;
        }
        *ret = types;
        return 0;
}

struct acks {
        uint32_t expected, received;
        int error;              /* first error, negative errno */
        uint32_t error_seq;
};

static void acks_parse(struct ks_nft *n, struct acks *a, const void *buf, int len)
{
        const struct nlmsghdr *nlh = buf;

        for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
                const struct nlmsgerr *err;

                if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != n->portid)
                        continue;
                err = mnl_nlmsg_get_payload(nlh);
                a->received++;
                if (err->error != 0 && a->error == 0) {
                        a->error = err->error;
                        a->error_seq = nlh->nlmsg_seq;
                }
        }
}

/*
 * The kernel processes the batch inside sendmsg, so the acks are queued when it
 * returns; still, wait (bounded) for every one of them: success means every
 * message was acknowledged and none failed.
 */
static int acks_collect(struct ks_nft *n, struct acks *a)
{
        _cleanup_free_ char *buf = malloc(DUMP_BUFFER_SIZE);
        int fd = mnl_socket_get_fd(n->nl);

        if (!buf)
                return -ENOMEM;
        while (a->received < a->expected && a->error == 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t len;
                int r = poll(&p, 1, ACK_TIMEOUT_MS);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return r < 0 ? -errno : -ETIMEDOUT;
                len = recv(fd, buf, DUMP_BUFFER_SIZE, MSG_DONTWAIT);
                if (len < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                acks_parse(n, a, buf, (int)len);
        }
        /* Drain what else the kernel said about this batch, so that the next one starts clean. */
        while (recv(fd, buf, DUMP_BUFFER_SIZE, MSG_DONTWAIT) > 0)
                ;
        return 0;
}

/* nft_quiet: the generation before, if the listener left the event group for this transaction. */
static bool quiet_begin(struct ks_nft *n, uint32_t *ret_gen)
{
        return n->quiet.mute && nft_generation(n, ret_gen) == 0 && n->quiet.mute(n->quiet.userdata, true) == 0;
}

/* committed: 1 if the kernel acknowledged it, 0 if it refused it, -1 if we cannot tell. */
static void quiet_end(struct ks_nft *n, uint32_t gen, int committed)
{
        uint32_t now = 0;
        int r = n->quiet.mute(n->quiet.userdata, false);

        if (r < 0 || committed < 0 || nft_generation(n, &now) < 0 || now != gen + (uint32_t)committed)
                n->quiet.lost(n->quiet.userdata);
}

static int txn_commit(struct ks_nft *n, struct txn *t, bool bulk, uint64_t *ret_usec, struct ks_error *e)
{
        int iovlen = nftnl_batch_iovec_len(t->batch);
        _cleanup_free_ struct iovec *iov = calloc((size_t)iovlen, sizeof(*iov));
        _cleanup_free_ uint16_t *types = NULL;
        struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
        struct msghdr msg = { .msg_name = &snl, .msg_namelen = sizeof(snl) };
        struct acks a = { .expected = t->next_seq - t->first_seq - 2 };
        uint64_t start;
        size_t total = 0;
        uint32_t idx, gen = 0;
        bool quiet;
        int r;

        if (!iov)
                return ks_error_set(e, -ENOMEM, KS_ERR_INTERNAL, "Out of memory");
        nftnl_batch_iovec(t->batch, iov, (uint32_t)iovlen);
        for (int i = 0; i < iovlen; i++)
                total += iov[i].iov_len;
        grow_sndbuf(n, total);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)iovlen;

        quiet = bulk && quiet_begin(n, &gen);
        start = now_monotonic_usec();
        if (sendmsg(mnl_socket_get_fd(n->nl), &msg, 0) < 0) {
                r = -errno;
                if (quiet)
                        quiet_end(n, gen, 0);
                return ks_error_set(e, r, KS_ERR_APPLY, "Could not send the nftables transaction (%zu bytes) to "
                                    "the kernel: %s; nothing was changed", total, strerror(-r));
        }
        r = acks_collect(n, &a);
        if (ret_usec)
                *ret_usec = now_monotonic_usec() - start;
        if (quiet)
                quiet_end(n, gen, r < 0 ? -1 : a.error == 0);
        if (r < 0)
                return ks_error_set(e, r, KS_ERR_APPLY,
                                    "No complete answer from the kernel to the nftables transaction "
                                    "(%u of %u acknowledgements): %s", a.received, a.expected, strerror(-r));
        if (a.error == 0)
                return 0;
        idx = a.error_seq - t->first_seq;
        if (txn_types(t, iov, iovlen, &types) < 0 || idx >= t->next_seq - t->first_seq)
                return ks_error_set(e, a.error, KS_ERR_APPLY, "The kernel refused the transaction: %s; "
                                    "nothing was changed", strerror(-a.error));
        return ks_error_set(e, a.error, KS_ERR_APPLY,
                            "The kernel refused the transaction at message %u of %u (%s): %s; nothing was changed",
                            idx, a.expected, msg_type_name(types[idx]), strerror(-a.error));
}

/*
 * What one transaction holds, in this order. Every change goes through
 * transaction(), which builds, sends, reads the acks of and frees the batch
 * (nftables' mnl_batch_talk plays that part in nft).
 */
struct txn_plan {
        const char *table;              /* what drop and set_flags apply to */
        bool drop;                      /* "table x; delete table x" first: the table is replaced */
        bool set_flags;                 /* NEWTABLE with flags (ownership is only given at creation) */
        uint32_t flags;
        const struct ks_ruleset *rs;    /* its messages, or NULL */
        nft_build_t build;              /* what a callback appends (staging in steps), or NULL */
        void *userdata;
        const char *comment;            /* of the new table, if not rs's */
        bool bulk;                      /* a table, or elements added: never empty; sent unheard (nft_quiet) */
};

static int transaction(struct ks_nft *n, const struct txn_plan *p, uint64_t *ret_usec, struct ks_error *e)
{
        struct txn t = {};
        int r;

        r = txn_begin(n, &t);
        t.comment = p->comment ? p->comment : ruleset_comment(p->rs);
        if (r == 0 && p->drop)
                r = txn_drop_table(&t, p->table);
        if (r == 0 && p->set_flags)
                r = txn_add_table(&t, NFT_MSG_NEWTABLE, NLM_F_CREATE, p->table, true, p->flags);
        if (r == 0 && p->rs)
                r = ruleset_to_batch(p->rs, t.batch, &t.next_seq);
        if (r == 0 && p->build)
                r = p->build(t.batch, &t.next_seq, p->userdata);
        if (r == 0) {
                txn_end(n, &t);
                /* Muted only if it changes something: else the generation would not move (nft_quiet). */
                r = txn_commit(n, &t, p->bulk && t.next_seq - t.first_seq > 2, ret_usec, e);
        } else {
                ks_error_set(e, r, KS_ERR_INTERNAL, "Could not build the nftables transaction: %s",
                             strerror(-r));
        }
        if (t.batch)
                nftnl_batch_free(t.batch);
        return r;
}

int nft_replace_table(struct ks_nft *n, const char *table, uint32_t flags, const struct ks_ruleset *rs,
                      uint64_t *ret_usec, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .table = table, .drop = true, .set_flags = flags != 0,
                                                  .flags = flags, .rs = rs, .bulk = true }, ret_usec, e);
}

int nft_apply(struct ks_nft *n, const struct ks_ruleset *rs, uint64_t *ret_usec, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .rs = rs }, ret_usec, e);
}

struct ruleset_list {
        const struct ks_ruleset *const *rs;
        size_t n;
};

static int build_rulesets(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        const struct ruleset_list *l = userdata;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < l->n; i++)
                r = ruleset_to_batch(l->rs[i], b, seq);
        return r < 0 ? r : 0;
}

int nft_apply_all(struct ks_nft *n, const struct ks_ruleset *const *rs, size_t n_rs, uint64_t *ret_usec,
                  struct ks_error *e)
{
        struct ruleset_list l = { .rs = rs, .n = n_rs };

        return transaction(n, &(struct txn_plan){ .build = build_rulesets, .userdata = &l }, ret_usec, e);
}

int nft_delete_table(struct ks_nft *n, const char *table, uint64_t *ret_usec, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .table = table, .drop = true }, ret_usec, e);
}

int nft_set_table_flags(struct ks_nft *n, const char *table, uint32_t flags, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .table = table, .set_flags = true, .flags = flags }, NULL, e);
}

int nft_transaction_with(struct ks_nft *n, const char *replace_table, uint32_t flags, nft_build_t build,
                         void *userdata, uint64_t *ret_usec, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .table = replace_table, .drop = replace_table != NULL,
                                                  .set_flags = replace_table && flags, .flags = flags,
                                                  .build = build, .userdata = userdata, .bulk = true },
                           ret_usec, e);
}

int nft_replace_table_with(struct ks_nft *n, const char *table, uint32_t flags, const char *comment,
                           nft_build_t build, void *userdata, uint64_t *ret_usec, struct ks_error *e)
{
        return transaction(n, &(struct txn_plan){ .table = table, .drop = true, .set_flags = flags != 0,
                                                  .flags = flags, .build = build, .userdata = userdata,
                                                  .comment = comment, .bulk = true }, ret_usec, e);
}

/* Send one request and run cb over the replies until the ack or NLMSG_DONE. */
/* Whether buf (len bytes) holds the end of the answer to request seq: its NLMSG_DONE or NLMSG_ERROR. */
static bool answer_ends(const char *buf, ssize_t len, uint32_t seq)
{
        const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
        int left = (int)len;

        for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
                if (nlh->nlmsg_seq == seq && (nlh->nlmsg_type == NLMSG_DONE || nlh->nlmsg_type == NLMSG_ERROR))
                        return true;
        return false;
}

/*
 * A dump that broke off (EINTR: the ruleset changed while it ran) still has
 * its rest coming: read it up to its end, else the next query on this socket
 * takes it for its own answer and fails with EPROTO (a sequence mismatch).
 * Bounded: a kernel that says nothing for a second has nothing more to say.
 */
static void answer_drain(struct ks_nft *n, char *buf, ssize_t len, uint32_t seq)
{
        int fd = mnl_socket_get_fd(n->nl);

        while (!answer_ends(buf, len, seq)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };

                if (poll(&p, 1, 1000) <= 0)
                        return;
                len = recv(fd, buf, DUMP_BUFFER_SIZE, MSG_DONTWAIT);
                if (len < 0 && errno != EINTR && errno != EAGAIN)
                        return;
        }
}

static int nft_query(struct ks_nft *n, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
        _cleanup_free_ char *buf = malloc(DUMP_BUFFER_SIZE);
        uint32_t seq = nlh->nlmsg_seq;
        ssize_t len;
        int r;

        if (!buf)
                return -ENOMEM;
        if (mnl_socket_sendto(n->nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        do {
                /* The socket is closed after a cancelled query: its rest need not be read. */
                if (n->cancel && atomic_load(n->cancel))
                        return -ECANCELED;
                len = mnl_socket_recvfrom(n->nl, buf, DUMP_BUFFER_SIZE);
                if (len < 0)
                        return -errno;
                r = mnl_cb_run(buf, (size_t)len, seq, n->portid, cb, data);
        } while (r > MNL_CB_STOP);
        if (r < 0 && errno == EINTR) {
                answer_drain(n, buf, len, seq);
                errno = EINTR;
        }
        return r < 0 ? -errno : 0;
}

int nft_exists(struct ks_nft *n, const char *table, const char *chain)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = chain ? NULL : nftnl_table_alloc();
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = chain ? nftnl_chain_alloc() : NULL;
        char buf[8192] = {};
        struct nlmsghdr *nlh;
        int r;

        if (!t && !c)
                return -ENOMEM;
        nlh = nftnl_nlmsg_build_hdr(buf, chain ? NFT_MSG_GETCHAIN : NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK,
                                    ++n->seq);
        if (c) {
                nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
                nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
                nftnl_chain_nlmsg_build_payload(nlh, c);
        } else {
                nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
                nftnl_table_nlmsg_build_payload(nlh, t);
        }
        r = nft_query(n, nlh, NULL, NULL);
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : 1;
}

struct counter_list {
        struct nft_counter *items;
        size_t n;
        int error;
};

static int counter_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_obj_freep) struct nftnl_obj *o = nftnl_obj_alloc();
        struct counter_list *l = data;
        struct nft_counter *items;
        const char *name;

        if (!o || nftnl_obj_nlmsg_parse(nlh, o) < 0)
                return MNL_CB_OK;
        if (nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE) != NFT_OBJECT_COUNTER)
                return MNL_CB_OK;
        name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME);
        /* The link layer's table counts under the same names (what it drops first): one sum. */
        for (size_t i = 0; name && i < l->n; i++)
                if (strcmp(l->items[i].name, name) == 0) {
                        l->items[i].packets += nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS);
                        l->items[i].bytes += nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_BYTES);
                        return MNL_CB_OK;
                }
        items = GREEDY_REALLOC(l->items, l->n + 1);
        if (!items || !name) {
                l->error = -ENOMEM;
                return MNL_CB_OK;
        }
        items[l->n] = (struct nft_counter){
                .name = strdup(name),
                .packets = nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_PKTS),
                .bytes = nftnl_obj_get_u64(o, NFTNL_OBJ_CTR_BYTES),
        };
        if (!items[l->n].name)
                l->error = -ENOMEM;
        else
                l->n++;
        return MNL_CB_OK;
}

void nft_counters_free(struct nft_counter *c, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(c[i].name);
        free(c);
}

static int read_counters_once(struct ks_nft *n, uint16_t family, const char *table, bool reset,
                              struct counter_list *l)
{
        _cleanup_(nftnl_obj_freep) struct nftnl_obj *o = nftnl_obj_alloc();
        char buf[8192] = {};
        struct nlmsghdr *nlh;

        if (!o)
                return -ENOMEM;
        nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, table);
        nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_COUNTER);
        nftnl_obj_set_u32(o, NFTNL_OBJ_FAMILY, family);
        nlh = nftnl_nlmsg_build_hdr(buf, reset ? NFT_MSG_GETOBJ_RESET : NFT_MSG_GETOBJ, family, NLM_F_DUMP,
                                    ++n->seq);
        nftnl_obj_nlmsg_build_payload(nlh, o);
        return nft_query(n, nlh, counter_cb, l);
}

/* with_links: add in the counters of netdev table TABLE_links (the link layer's, same names). */
static int read_counters(struct ks_nft *n, const char *table, bool with_links, bool reset, struct nft_counter **ret,
                         size_t *ret_n)
{
        struct counter_list l = {};
        char links[NFT_TABLE_MAXNAMELEN];
        int r;

        /* A dump interrupted by a concurrent change (EINTR) is redone. */
        for (int attempt = 0; attempt < 5; attempt++) {
                r = read_counters_once(n, NFPROTO_INET, table, reset, &l);
                /* Then netdev table TABLE_links (compile_links), if it exists, summed in. */
                if (r == 0 && with_links && compile_links_table_name(links, sizeof(links), table) == 0) {
                        r = read_counters_once(n, NFPROTO_NETDEV, links, reset, &l);
                        r = r == -ENOENT ? 0 : r;
                }
                if (r == 0 && l.error < 0)
                        r = l.error;
                if (r != -EINTR)
                        break;
                nft_counters_free(l.items, l.n);
                l = (struct counter_list){};
        }
        if (r == -ENOENT)
                r = 0;
        if (r < 0) {
                nft_counters_free(l.items, l.n);
                return r;
        }
        *ret = l.items;
        *ret_n = l.n;
        return 0;
}

int nft_read_counters(struct ks_nft *n, const char *table, struct nft_counter **ret, size_t *ret_n)
{
        return read_counters(n, table, true, false, ret, ret_n);
}

int nft_reset_counters(struct ks_nft *n, const char *table)
{
        struct nft_counter *c = NULL;
        size_t count = 0;
        int r = read_counters(n, table, true, true, &c, &count);

        nft_counters_free(c, count);
        return r;
}

/* ---- Read-back: the shape of our table as the kernel holds it ---------- */

struct summary_dump {
        struct ks_summary *s;
        const char *table;
        int error;
};

static int chain_dump_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_chain_freep) struct nftnl_chain *c = nftnl_chain_alloc();
        struct summary_dump *d = data;
        struct summary_chain *k;

        if (!c || nftnl_chain_nlmsg_parse(nlh, c) < 0 ||
            strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), d->table) != 0)
                return MNL_CB_OK;
        k = summary_chain(d->s, nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), true);
        if (!k)
                d->error = -ENOMEM;
        else {
                k->base = nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM);
                if (k->base)
                        k->priority = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
        }
        return MNL_CB_OK;
}

static int rule_dump_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_rule_freep) struct nftnl_rule *r = nftnl_rule_alloc();
        struct summary_dump *d = data;

        if (!r || nftnl_rule_nlmsg_parse(nlh, r) < 0 ||
            strcmp(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), d->table) != 0)
                return MNL_CB_OK;
        if (summary_add_rule(d->s, r) < 0)
                d->error = -ENOMEM;
        return MNL_CB_OK;
}

static int set_dump_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *st = nftnl_set_alloc();
        struct summary_dump *d = data;

        if (!st || nftnl_set_nlmsg_parse(nlh, st) < 0 ||
            strcmp(nftnl_set_get_str(st, NFTNL_SET_TABLE), d->table) != 0)
                return MNL_CB_OK;
        if (!summary_set(d->s, nftnl_set_get_str(st, NFTNL_SET_NAME), true))
                d->error = -ENOMEM;
        return MNL_CB_OK;
}

struct elems_dump {
        const struct ks_summary *s;     /* its key, if keyed */
        struct summary_set *set;
        struct summary_seen seen;       /* keyed: every element's digest */
};

static int setelem_dump_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *st = nftnl_set_alloc();
        struct elems_dump *d = data;

        if (st && nftnl_set_elems_nlmsg_parse(nlh, st) >= 0)
                summary_add_elems_seen(d->s, d->set, st, d->s->keyed ? &d->seen : NULL);
        return MNL_CB_OK;
}

/* Dump one kind of object of the table (the request carries the table name as a filter). */
static int dump_objects(struct ks_nft *n, uint16_t type, const char *table, const char *set, mnl_cb_t cb,
                        void *data)
{
        char buf[8192] = {};
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, NLM_F_DUMP, ++n->seq);

        mnl_attr_put_strz(nlh, 1, table);       /* NFTA_*_TABLE is attribute 1 for all of them */
        if (set)
                mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
        return nft_query(n, nlh, cb, data);
}

/*
 * The elements of set st of the table: counted, and digested if s is keyed.
 * A dump that lists an element twice (a hash set growing its table meanwhile,
 * summary.h) is redone like one the kernel says was interrupted: -EINTR.
 */
static int dump_elems(struct ks_nft *n, const char *table, const struct ks_summary *s, struct summary_set *st)
{
        struct elems_dump d = { .s = s, .set = st };
        int r;

        st->elems = 0;
        st->content = 0;
        st->counted = false;
        r = dump_objects(n, NFT_MSG_GETSETELEM, table, st->name, setelem_dump_cb, &d);
        if (d.seen.error)
                r = r < 0 ? r : -ENOMEM;
        if (summary_seen_twice(&d.seen))
                r = r < 0 ? r : -EINTR;
        return r;
}

struct table_facts {
        uint32_t flags;
        char comment[COMPILE_COMMENT_SIZE];
};

static int table_udata_cb(const struct nftnl_udata *attr, void *data)
{
        struct table_facts *f = data;
        uint8_t len = nftnl_udata_len(attr);
        const char *value = nftnl_udata_get(attr);

        if (nftnl_udata_type(attr) == NFTNL_UDATA_TABLE_COMMENT && len > 0 && value[len - 1] == '\0' &&
            len <= sizeof(f->comment))
                memcpy(f->comment, value, len);
        return 0;
}

static int table_flags_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        struct table_facts *f = data;
        const void *udata;
        uint32_t len = 0;

        if (!t || nftnl_table_nlmsg_parse(nlh, t) < 0)
                return MNL_CB_OK;
        if (nftnl_table_is_set(t, NFTNL_TABLE_FLAGS))
                f->flags = nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS);
        udata = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &len);
        if (udata)
                nftnl_udata_parse(udata, len, table_udata_cb, f);
        return MNL_CB_OK;
}

/* The flags of inet table `table` (NFT_TABLE_F_DORMANT: an attacker may set it to unhook us), its comment. */
static int table_facts(struct ks_nft *n, const char *table, struct table_facts *ret)
{
        _cleanup_(nftnl_table_freep) struct nftnl_table *t = nftnl_table_alloc();
        char buf[8192] = {};
        struct nlmsghdr *nlh;

        if (!t)
                return -ENOMEM;
        *ret = (struct table_facts){};
        nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, ++n->seq);
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
        nftnl_table_nlmsg_build_payload(nlh, t);
        return nft_query(n, nlh, table_flags_cb, ret);
}

/* The summary's table-level facts: whether it is dormant, who built it (the comment). */
static int summary_table_flags(struct ks_nft *n, const char *table, struct ks_summary *s)
{
        struct table_facts f;
        int r = table_facts(n, table, &f);

        s->dormant = r == 0 && (f.flags & NFT_TABLE_F_DORMANT);
        if (r == 0 && f.comment[0] && summary_set_comment(s, f.comment) < 0)
                r = -ENOMEM;
        return r;
}

static int table_summary_once(struct ks_nft *n, const char *table, bool with_elems, struct ks_summary *s)
{
        struct summary_dump d = { .s = s, .table = table };
        struct nft_counter *c = NULL;
        size_t count = 0;
        int r;

        r = summary_table_flags(n, table, s);
        if (r == 0)
                r = dump_objects(n, NFT_MSG_GETCHAIN, table, NULL, chain_dump_cb, &d);
        if (r == 0)
                r = dump_objects(n, NFT_MSG_GETRULE, table, NULL, rule_dump_cb, &d);
        if (r == 0)
                r = dump_objects(n, NFT_MSG_GETSET, table, NULL, set_dump_cb, &d);
        for (size_t i = 0; r == 0 && with_elems && i < s->n_sets; i++) {
                r = dump_elems(n, table, s, &s->sets[i]);
                s->sets[i].counted = r == 0;
        }
        if (r == 0)
                r = read_counters(n, table, false, false, &c, &count);
        for (size_t i = 0; r == 0 && i < count; i++)
                r = summary_add_counter(s, c[i].name);
        nft_counters_free(c, count);
        return r < 0 ? r : d.error;
}

int nft_table_summary(struct ks_nft *n, const char *table, bool with_elems, struct ks_summary *ret)
{
        int r = -EINTR;

        /* A dump interrupted by a concurrent change is redone. */
        for (int attempt = 0; attempt < 5 && r == -EINTR; attempt++) {
                summary_empty(ret);
                r = table_summary_once(n, table, with_elems, ret);
        }
        if (r == -ENOENT)
                r = 0;  /* no table: an empty shape */
        return r;
}

static int hooks_summary_once(struct ks_nft *n, const char *table, struct ks_summary *s)
{
        struct summary_dump d = { .s = s, .table = table };
        int r = summary_table_flags(n, table, s);

        if (r == 0)
                r = dump_objects(n, NFT_MSG_GETCHAIN, table, NULL, chain_dump_cb, &d);
        /* The rules of the hooked chains only: NFTA_RULE_CHAIN (2) filters the dump. */
        for (size_t i = 0; r == 0 && i < s->n_chains; i++)
                if (s->chains[i].base)
                        r = dump_objects(n, NFT_MSG_GETRULE, table, s->chains[i].name, rule_dump_cb, &d);
        return r < 0 ? r : d.error;
}

int nft_hooks_summary(struct ks_nft *n, const char *table, struct ks_summary *ret)
{
        int r = -EINTR;

        for (int attempt = 0; attempt < 5 && r == -EINTR; attempt++) {
                summary_empty(ret);
                r = hooks_summary_once(n, table, ret);
        }
        return r == -ENOENT ? 0 : r;
}

int nft_read_elems(struct ks_nft *n, const char *table, const char *const *sets, size_t n_sets,
                   struct ks_summary *s)
{
        int r = 0;

        for (size_t i = 0; r >= 0 && i < n_sets; i++) {
                struct summary_set *st = summary_set(s, sets[i], true);

                r = st ? -EINTR : -ENOMEM;
                /* A dump interrupted by a concurrent change is redone; a set that is gone is not counted. */
                for (int attempt = 0; attempt < 5 && r == -EINTR; attempt++)
                        r = dump_elems(n, table, s, st);
                if (st)
                        st->counted = r == 0;
                r = r == -ENOENT ? 0 : r;
        }
        return r;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
        struct nftnl_gen *g = nftnl_gen_alloc();

        if (g && nftnl_gen_nlmsg_parse(nlh, g) == 0 && nftnl_gen_is_set(g, NFTNL_GEN_ID))
                *(uint32_t *)data = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
        nftnl_gen_free(g);
        return MNL_CB_OK;
}

int nft_generation(struct ks_nft *n, uint32_t *ret)
{
        char buf[8192] = {};
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, NFPROTO_UNSPEC, NLM_F_ACK, ++n->seq);

        return nft_query(n, nlh, gen_cb, ret);
}

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
        (*(unsigned *)data)++;
        return MNL_CB_OK;
}

int nft_has_flowtables(struct ks_nft *n)
{
        char buf[8192] = {};
        struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETFLOWTABLE, NFPROTO_UNSPEC, NLM_F_DUMP,
                                                     ++n->seq);
        unsigned count = 0;
        int r = nft_query(n, nlh, count_cb, &count);

        if (r == -EOPNOTSUPP || r == -ENOENT)
                return 0;       /* a kernel without flowtables */
        return r < 0 ? r : count > 0;
}

/* ---- The drop sensor: P/drops_* sets (compile-drops.c) ------------------ */

struct drop_sets {
        char **names;
        uint64_t *timeouts;             /* ms, each set's own */
        size_t n;
        const char *table;
        int error;
};

static void drop_sets_free(struct drop_sets *d)
{
        for (size_t i = 0; i < d->n; i++)
                free(d->names[i]);
        free(d->names);
        free(d->timeouts);
        *d = (struct drop_sets){ .table = d->table };
}

/* "P/drops_v4[_noport][_first]": the family, whether the key has a port, a _first set; false for any other set. */
static bool drop_set_kind(const char *name, int *ret_family, bool *ret_ports, bool *ret_first)
{
        const char *s = strstr(name, COMPILE_NAME_SEP DROPS_SET_PREFIX);

        if (!s)
                return false;
        s += strlen(COMPILE_NAME_SEP DROPS_SET_PREFIX);
        if (strncmp(s, "v4", 2) == 0)
                *ret_family = AF_INET;
        else if (strncmp(s, "v6", 2) == 0)
                *ret_family = AF_INET6;
        else
                return false;
        s += 2;
        *ret_ports = strncmp(s, DROPS_NOPORT_SUFFIX, strlen(DROPS_NOPORT_SUFFIX)) != 0;
        if (!*ret_ports)
                s += strlen(DROPS_NOPORT_SUFFIX);
        *ret_first = strcmp(s, DROPS_FIRST_SUFFIX) == 0;
        return *s == '\0' || *ret_first;
}

static int drop_set_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *st = nftnl_set_alloc();
        struct drop_sets *d = data;
        const char *name;
        bool ports, first;
        int family;

        if (!st || nftnl_set_nlmsg_parse(nlh, st) < 0 || strcmp(nftnl_set_get_str(st, NFTNL_SET_TABLE), d->table) != 0)
                return MNL_CB_OK;
        name = nftnl_set_get_str(st, NFTNL_SET_NAME);
        if (!name || !drop_set_kind(name, &family, &ports, &first))
                return MNL_CB_OK;
        if (!GREEDY_REALLOC(d->names, d->n + 1) || !GREEDY_REALLOC(d->timeouts, d->n + 1) ||
            !(d->names[d->n] = strdup(name))) {
                d->error = -ENOMEM;
                return MNL_CB_OK;
        }
        d->timeouts[d->n++] = nftnl_set_is_set(st, NFTNL_SET_TIMEOUT) ? nftnl_set_get_u64(st, NFTNL_SET_TIMEOUT) : 0;
        return MNL_CB_OK;
}

struct drop_read {
        struct nft_drop *items;
        size_t n;
        uint64_t skipped;
        uint64_t now_usec;              /* CLOCK_REALTIME at the message being parsed */
        uint64_t timeout;               /* the set's, ms */
        int family;
        bool ports, first;
        int error;
};

/* The element's counter (the set's one expression) into packets and bytes. */
static void drop_elem_counts(struct nftnl_set_elem *e, struct nft_drop *d)
{
        struct nftnl_expr *x;
        uint32_t len;

        if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPR))
                return;
        x = (struct nftnl_expr *)nftnl_set_elem_get(e, NFTNL_SET_ELEM_EXPR, &len);
        if (!x || strcmp(nftnl_expr_get_str(x, NFTNL_EXPR_NAME), "counter") != 0)
                return;
        d->packets = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_PACKETS);
        d->bytes = nftnl_expr_get_u64(x, NFTNL_EXPR_CTR_BYTES);
}

/* The kernel leaves out an element's timeout when it is the set's (6.x): then the set's applies. */
static void drop_elem_times(struct nftnl_set_elem *e, uint64_t set_timeout, struct nft_drop *d)
{
        uint64_t timeout = set_timeout, expires;

        if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPIRATION))
                return;
        if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT))
                timeout = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT);
        expires = nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_EXPIRATION);
        d->since_ms = timeout > expires ? timeout - expires : 0;
        d->expires_ms = expires;
}

/* The tuple's order, for the _first elements to find their counting one. */
static int drop_cmp(const void *a, const void *b)
{
        const struct nft_drop *x = a, *y = b;
        int c;

        if (x->family != y->family)
                return x->family < y->family ? -1 : 1;
        c = memcmp(x->src, y->src, sizeof(x->src));
        if (c == 0)
                c = memcmp(x->dst, y->dst, sizeof(x->dst));
        if (c == 0 && x->proto != y->proto)
                c = x->proto < y->proto ? -1 : 1;
        if (c == 0 && x->port != y->port)
                c = x->port < y->port ? -1 : 1;
        return c;
}

/* A _first element: the first packet of a tuple read from a counting set (the earliest, if several). */
static void drop_first(struct drop_read *r, const struct nft_drop *d)
{
        struct nft_drop *c = r->n > 0 ? bsearch(d, r->items, r->n, sizeof(*d), drop_cmp) : NULL;
        uint64_t first = d->read_usec > d->since_ms * 1000 ? d->read_usec - d->since_ms * 1000 : 0;

        if (c && first && (!c->first_usec || first < c->first_usec))
                c->first_usec = first;
}

static int drop_elem_cb(struct nftnl_set_elem *e, void *data)
{
        struct drop_read *r = data;
        size_t alen = r->family == AF_INET ? 4 : 16;
        struct nft_drop d = { .family = r->family, .port = -1 };
        const uint8_t *key;
        uint32_t len = 0;

        key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
        if (!key || len < 2 * alen + (r->ports ? 8 : 1))
                return 0;
        memcpy(d.src, key, alen);
        memcpy(d.dst, key + alen, alen);
        d.proto = key[2 * alen];
        if (r->ports)
                d.port = (key[2 * alen + 4] << 8) | key[2 * alen + 5];
        drop_elem_counts(e, &d);
        drop_elem_times(e, r->timeout, &d);
        d.read_usec = r->now_usec;
        if (r->first) {
                drop_first(r, &d);
                return 0;
        }
        /* Bounded: what does not fit in this read is counted, not kept. */
        if (r->n >= NFT_DROPS_READ_MAX) {
                r->skipped += d.packets;
                return 0;
        }
        if (!GREEDY_REALLOC(r->items, r->n + 1)) {
                r->error = -ENOMEM;
                return -1;
        }
        r->items[r->n++] = d;
        return 0;
}

static int drop_elems_cb(const struct nlmsghdr *nlh, void *data)
{
        _cleanup_(nftnl_set_freep) struct nftnl_set *st = nftnl_set_alloc();

        struct drop_read *r = data;

        /* The kernel's times are relative to when it built the message: a read takes a while. */
        r->now_usec = now_realtime_usec();
        if (st && nftnl_set_elems_nlmsg_parse(nlh, st) >= 0)
                nftnl_set_elem_foreach(st, drop_elem_cb, data);
        return MNL_CB_OK;
}

/* The sum of the P/drops_overflow counters (packets). */
static int read_drops_overflow(struct ks_nft *n, const char *table, uint64_t *ret)
{
        struct nft_counter *c = NULL;
        size_t count = 0;
        int k;

        k = read_counters(n, table, false, false, &c, &count);
        *ret = 0;
        for (size_t i = 0; k == 0 && i < count; i++) {
                const char *s = strrchr(c[i].name, '/');

                if (s && strcmp(s + 1, COUNTER_DROPS_OVERFLOW) == 0)
                        *ret += c[i].packets;
        }
        nft_counters_free(c, count);
        return k;
}

int nft_read_drops_overflow(struct ks_nft *n, const char *table, uint64_t *ret)
{
        int k = read_drops_overflow(n, table, ret);

        return k == -ENOENT ? 0 : k;
}

static int read_drops_once(struct ks_nft *n, const char *table, struct drop_read *r, uint64_t *ret_overflow)
{
        struct drop_sets sets = { .table = table };
        int k;

        k = dump_objects(n, NFT_MSG_GETSET, table, NULL, drop_set_cb, &sets);
        if (k == 0)
                k = sets.error;
        /* The counting sets, then the _first ones: their elements are looked up among the first. */
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; k == 0 && i < sets.n; i++) {
                        drop_set_kind(sets.names[i], &r->family, &r->ports, &r->first);
                        if (r->first != (pass == 1))
                                continue;
                        r->timeout = sets.timeouts[i];
                        k = dump_objects(n, NFT_MSG_GETSETELEM, table, sets.names[i], drop_elems_cb, r);
                        if (k == 0)
                                k = r->error;
                }
                if (pass == 0 && r->n > 0)
                        qsort(r->items, r->n, sizeof(*r->items), drop_cmp);
        }
        drop_sets_free(&sets);
        return k == 0 ? read_drops_overflow(n, table, ret_overflow) : k;
}

int nft_read_drops(struct ks_nft *n, const char *table, struct nft_drop **ret, size_t *ret_n,
                   uint64_t *ret_overflow, uint64_t *ret_skipped)
{
        struct drop_read r = {};
        uint64_t overflow = 0;
        int k = -EINTR;

        /* A dump interrupted by a concurrent change is redone. */
        for (int attempt = 0; attempt < 5 && k == -EINTR; attempt++) {
                free(r.items);
                r = (struct drop_read){};
                k = read_drops_once(n, table, &r, &overflow);
        }
        if (k == -ENOENT)
                k = 0;  /* no table: nothing dropped */
        if (k < 0) {
                free(r.items);
                return k;
        }
        *ret = r.items;
        *ret_n = r.n;
        *ret_overflow = overflow;
        *ret_skipped = r.skipped;
        return 0;
}

struct drop_flush {
        struct drop_sets *sets;
        const char *table;
};

static int build_drop_flush(struct nftnl_batch *b, uint32_t *seq, void *userdata)
{
        struct drop_flush *f = userdata;

        for (size_t i = 0; i < f->sets->n; i++) {
                struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b), NFT_MSG_DELSETELEM,
                                                             NFPROTO_INET, NLM_F_ACK, (*seq)++);

                /* Only the table and the set: the kernel empties the set. */
                mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, f->table);
                mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, f->sets->names[i]);
                if (nftnl_batch_update(b) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int nft_flush_drops(struct ks_nft *n, const char *table, struct ks_error *e)
{
        struct drop_sets sets = { .table = table };
        struct drop_flush f = { .sets = &sets, .table = table };
        int k;

        k = dump_objects(n, NFT_MSG_GETSET, table, NULL, drop_set_cb, &sets);
        if (k == 0)
                k = sets.error;
        if (k == -ENOENT)
                k = 0;
        /* Not bulk: flushing empty sets commits nothing, and the generation would not move (nft_quiet). */
        if (k == 0 && sets.n > 0)
                k = transaction(n, &(struct txn_plan){ .build = build_drop_flush, .userdata = &f }, NULL, e);
        else if (k < 0)
                ks_error_set(e, k, KS_ERR_APPLY, "Could not list the drop sensor's sets: %s", strerror(-k));
        drop_sets_free(&sets);
        return k;
}
