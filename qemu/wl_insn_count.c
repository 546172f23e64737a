/*
 * QEMU TCG plugin: exact count of the instructions executed between two marker
 * functions of the firmware (wl_count_begin / wl_count_end).
 *
 * Debian ships no qemu-plugin.h, so the few entry points of the stable plugin
 * API (version 1, QEMU 7.2) used here are declared below.
 *
 * Arguments: begin=<hex addr>,end=<hex addr>[,step=<hex addr>]. Every time the
 * end marker is reached, one line "wl_insns <n>" is written to the plugin log
 * (-d plugin), n = instructions executed since the begin marker was last
 * reached; every time the optional step marker is reached (a profiling build
 * calls it after each kernel), one line "wl_step <n>", n counted alike.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS = 0 };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 = 0 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* Instructions of every translation block are added when the block starts, so
 * a marker's own block is counted at both ends alike and cancels out. */
static uint64_t insn_total;
static uint64_t begin_total;
static uint64_t begin_addr, end_addr, step_addr;

static void on_begin(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    begin_total = insn_total;
}

static void on_end(unsigned int vcpu, void *udata)
{
    char line[64];
    (void)vcpu; (void)udata;
    snprintf(line, sizeof line, "wl_insns %" PRIu64 "\n", insn_total - begin_total);
    qemu_plugin_outs(line);
}

static void on_step(unsigned int vcpu, void *udata)
{
    char line[64];
    (void)vcpu; (void)udata;
    snprintf(line, sizeof line, "wl_step %" PRIu64 "\n", insn_total - begin_total);
    qemu_plugin_outs(line);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_total, n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t va = qemu_plugin_insn_vaddr(insn);
        if (va == begin_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        else if (va == end_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        else if (step_addr != 0 && va == step_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_step, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                             int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "begin=", 6) == 0)
            begin_addr = strtoull(argv[i] + 6, NULL, 16);
        else if (strncmp(argv[i], "end=", 4) == 0)
            end_addr = strtoull(argv[i] + 4, NULL, 16);
        else if (strncmp(argv[i], "step=", 5) == 0)
            step_addr = strtoull(argv[i] + 5, NULL, 16);
    }
    if (begin_addr == 0 || end_addr == 0) {
        fprintf(stderr, "wl_insn_count: begin= and end= addresses are required\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    return 0;
}
