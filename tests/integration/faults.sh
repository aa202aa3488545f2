#!/usr/bin/env bash
# Fault injection through real mounts (docs/security.md, "Fault injection"). Needs a build with
# -DPKRAMFS_FAULT_INJECTION=ON (tools/run-faults makes one and runs this script against it; ctest
# runs that as the test "faults"); against the product build the checks are skipped.
#  (1) allocation failures: the Nth heap, block (arena) or frame allocation fails, for every N
#      the workload reaches; each operation fails with ENOMEM/ENOSPC or succeeds (a write may
#      be short), the tree is the model of what succeeded with no half-built inode, pkramfs-ctl
#      check is clean after unmount and a remount gives the same tree;
#  (2) kill -9 at exact points of journal appends (torn records), checkpoints (slot written,
#      superblock switch torn, switched) and preserve (after each step): the next mount has
#      everything acknowledged, is writable, and check is clean;
#  (3) random bytes written into a node file by another process (seeded), in every region,
#      while unmounted and while mounted followed by kill -9: refused with one line and left
#      untouched, or restored only where every CRC holds. File data has no CRC: damage there
#      shows in the file's contents and nowhere else.
# PKIT_FAULT_SEED (default 1) seeds the workloads and the random bytes; PKIT_FAULT_STRIDE
# (default 2) steps N through the heap passes (1: every one; the unit tests take every one);
# PKIT_FAULT_PARTS (default "alloc crash random") picks the parts.
# pkit-timeout: 480
# shellcheck disable=SC2154  # NI_* variables come from node_info (eval)
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

FP="$PY $PKIT_LIBDIR/faults.py"
# The node's own crash consistency (arena, journal, checkpoints), whose nodes are copied from a
# template: files in the arena, not in file objects (objects.sh and the unit tests cover those).
export PKRAMFS_TUNE=passthrough=0
NI="$PY $PKIT_LIBDIR/node_image.py"
SEED=${PKIT_FAULT_SEED:-1}
STRIDE=${PKIT_FAULT_STRIDE:-2}
PARTS=" ${PKIT_FAULT_PARTS:-alloc crash random} "
part() { case $PARTS in *" $1 "*) return 0 ;; esac; info "part $1 skipped (PKIT_FAULT_PARTS)"; return 1; }
mnt=$T/mnt

if ! "$PK" --debug-fail=list >/dev/null 2>&1; then
    skip "faults" "pkramfs-fuse was built without -DPKRAMFS_FAULT_INJECTION=ON (tools/run-faults builds a variant with it and runs this script)"
    finish
fi
ctl_check() { CHECK_OUT=$("$CTL" --shm-dir="$SHM" --run-dir="$RUN" check "$1" 2>&1); CHECK_RC=$?; }
# run_py LABEL CMD...: a python checker's PASS/FAIL lines count as this script's
run_py() {
    local label=$1 out rc
    shift
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -v '^# fired='
    PKIT_PASS=$((PKIT_PASS + $(grep -c '^PASS ' <<<"$out")))
    PKIT_FAIL=$((PKIT_FAIL + $(grep -c '^FAIL ' <<<"$out")))
    if [ "$rc" != 0 ] && ! grep -q '^FAIL ' <<<"$out"; then fail "$label" "exit $rc without a FAIL line"; fi
    FIRED=$(sed -n 's/^# fired=//p' <<<"$out")
    return "$rc"
}

# ------------------------------------------------------------ (1) allocation failures --
part alloc && for point in heap arena frame; do
    n=1 passes=
    while :; do
        node=alloc-$point-$n c="alloc[$point:$n]"
        if ! pk_start "$mnt" --pkram="$node" --size=64m --debug-fail="$point:$n"; then
            fail "$c:mount" "did not mount"; break
        fi
        $FP ops "$mnt" "$T/ops.log"
        run_py "$c" $FP verify "$mnt" "$T/ops.log" "$c"
        pk_stop "$mnt"
        passes=$(sed -n "s/.*fault injection: $point:$n passes=\([0-9]*\).*/\1/p" "$PK_ERR")
        if [ -z "$passes" ]; then fail "$c:passes" "no pass count on stderr"; details "$PK_ERR" 5; break; fi
        if [ "$n" -le "$passes" ]; then
            assert_eq "$c:failure-seen" 1 "$FIRED"
        fi
        ctl_check "$node"
        if [ "$CHECK_RC" = 0 ]; then pass "$c:check-clean"
        else fail "$c:check-clean" "exit $CHECK_RC"; details - 5 <<<"$CHECK_OUT"; fi
        if pk_start "$mnt" --pkram="$node"; then
            run_py "$c:remount" $FP verify "$mnt" "$T/ops.log" "$c:remount"
            pk_stop "$mnt"
        else
            fail "$c:remount" "refused"
        fi
        rm -f "$SHM/$node"
        [ "$n" -gt "$passes" ] && break    # past the last pass: that run was unharmed
        if [ "$point" = heap ]; then n=$((n + STRIDE)); else n=$((n + 1)); fi
    done
    info "$point: the workload makes ${passes:-?} passes; N = 1..$n swept" \
        "$([ "$point" = heap ] && echo "in steps of $STRIDE")"
done

# ------------------------------------------------------------------ (2) crash points --
crash_points=(journal-before-header:1 journal-before-header:6 journal-before-header:150
    journal-torn:1 journal-torn:2 journal-torn:77 journal-torn:333
    checkpoint-written:1 checkpoint-torn:1 checkpoint-switched:1
    preserve-synced:1 preserve-frozen:1 preserve-checkpointed:1 preserve-marked:1)
i=0
part crash && for pn in "${crash_points[@]}"; do
    i=$((i + 1))
    mkdir -p "$T/crash"
    run_py "crash[$pn]" $FP crash "$PK" "$CTL" "$T/crash" "${pn%:*}" "${pn#*:}" "$((SEED * 100 + i))"
done
rm -rf "$T/crash"

# ------------------------------------------------------------------- (3) random bytes --
part random || finish
tree_of() { (cd "$1" && find . -printf '%P %y %m %u %g %s %n %l %T@\n' | sort && find . -type f -exec sha256sum {} + | sort && getfattr -R -d -m - . 2>/dev/null); }
meta_of() { grep -Ev '^[0-9a-f]{64}  ' "$1"; }
node_info() { eval "$($NI info "$1" | sed 's/^/NI_/')"; }
sha() { sha256sum < "$1"; }
kill9() { kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null; umount -l "$mnt" 2>/dev/null; }

# The template (as in corruption.sh): session 1 writes tree A, clean unmount; session 2 more,
# clean unmount (the other slot); session 3 changes that live only in the journal, the last of
# them one record, then kill -9.
pk_start "$mnt" --pkram=tpl --size=64m || { fail "random:template" "no mount"; finish; }
(cd "$mnt" && mkdir -p a/b && echo hello > a/f && ln a/f a/hard && ln -s f a/sym &&
    mkfifo a/fifo && setfattr -n user.k -v v1 a/f && head -c 300K /dev/urandom > a/big &&
    yes PKRAMFS-FAULTS-MARKER | head -c 65536 > a/marked &&
    ln -s "$(printf '%0200d' 0)" a/longlink)
tree_of "$mnt" > "$T/tree.A"
pk_stop "$mnt"
pk_start "$mnt" --pkram=tpl || { fail "random:template" "no remount"; finish; }
(cd "$mnt" && mkdir b && head -c 70000 /dev/urandom > b/data && rm a/hard)
pk_stop "$mnt"
pk_start "$mnt" --pkram=tpl || { fail "random:template" "no third mount"; finish; }
(cd "$mnt" && mkdir j && head -c 9000 /dev/urandom > j/data && mv b/data j/moved &&
    truncate -s 100 a/big && sync -f .)
tree_of "$mnt" > /dev/null
tree_of "$mnt" > "$T/tree.pre"
setfattr -n trusted.last -v 1 "$mnt/a/fifo"
tree_of "$mnt" > "$T/tree.full"
kill9
cp --sparse=always "$SHM/tpl" "$T/template"
node_info "$T/template"
last=$((NI_jrecs - 1))
jstart=$((NI_journal_first_frame * 2097152))
jend=$(( $(eval echo \$NI_jrec_${last}_off) + 32 + ($(eval echo \$NI_jrec_${last}_payload) + 7) / 8 * 8 ))
ok=$((1 - NI_current_slot))
other_off=$(eval echo \$NI_slot${ok}_off) other_bytes=$(eval echo \$NI_slot${ok}_bytes)
data_off=$((NI_data_first_frame * 2097152))
# a/marked's blocks: found by their contents (file data is nowhere else in the node)
marked_off=$(grep -obUa -m1 PKRAMFS-FAULTS-MARKER "$T/template" | head -1 | cut -d: -f1)
[ -n "$marked_off" ] && [ "$marked_off" -ge "$data_off" ] ||
    { fail "random:template" "a/marked's data not found in the data frames"; finish; }
info "template: journal $jstart..$jend ($NI_jrecs records), current checkpoint $NI_cur_off+$NI_cur_bytes," \
    "other $other_off+$other_bytes, data frames from $data_off"

# outcome CASE NAME ALLOWED...: NAME (damaged) is refused with one line and left untouched, or
# mounts with a tree among ALLOWED (full, pre: without the last journal record, full-meta:
# all but file contents, A-meta: tree A's metadata, the older checkpoint); after a clean
# unmount pkramfs-ctl check is clean.
outcome() {
    local c=$1 name=$2; shift 2
    local allowed=" $* " before got="" w
    before=$(sha "$SHM/$name")
    PKIT_SEQ=$((PKIT_SEQ + 1))
    local err=$T/attempt.$PKIT_SEQ.err
    if pk_start "$mnt" --pkram="$name" 2>/dev/null >/dev/null; then
        tree_of "$mnt" > "$T/got"
        for w in full pre; do
            case $allowed in *" $w "*) cmp -s "$T/tree.$w" "$T/got" && got=$w ;; esac
            [ -n "$got" ] && break
        done
        if [ -z "$got" ]; then
            for w in full A; do
                case $allowed in *" $w-meta "*) cmp -s <(meta_of "$T/tree.$w") <(meta_of "$T/got") && got=$w-meta ;; esac
                [ -n "$got" ] && break
            done
        fi
        if [ -n "$got" ]; then
            pass "$c:restored-as-$got"
            if [ "$got" = full-meta ]; then
                changed=$(diff <(grep -E '^[0-9a-f]{64}  ' "$T/tree.full") <(grep -E '^[0-9a-f]{64}  ' "$T/got") |
                    sed -n 's/^> [0-9a-f]*  \.\///p' | tr '\n' ' ')
                info "$c: file data has no CRC; contents changed: $changed"
                # the damaged bytes were a/marked's: that file, and no other, reads differently
                [ -n "${EXPECT_CHANGED:-}" ] && assert_eq "$c:only-the-damaged-file-changed" "$EXPECT_CHANGED " "$changed"
            fi
        else
            fail "$c:restored" "mounted, but the tree is none of:$allowed"
            diff "$T/tree.full" "$T/got" | details - 10
        fi
        pk_stop "$mnt"
        ctl_check "$name"
        if [ "$CHECK_RC" = 0 ]; then pass "$c:check-clean-after-unmount"
        else fail "$c:check-clean-after-unmount" "exit $CHECK_RC"; details - 5 <<<"$CHECK_OUT"; fi
        return
    fi
    cp "$PK_ERR" "$err" 2>/dev/null
    case $allowed in
    *" refused "*)
        pass "$c:refused"
        assert_one_line_err "$c:one-line" "$PK_ERR"
        assert_eq "$c:node-untouched" "$before" "$(sha "$SHM/$name")"
        ctl_check "$name"
        assert_eq "$c:check-exit" 1 "$CHECK_RC" ;;
    *) fail "$c:mounts" "refused, expected one of:$allowed"; details "$PK_ERR" 3 ;;
    esac
}

# region LO HI ALLOWED...: cases seeded SEED*10+k, k = 1..3, unmounted
region() {
    local r=$1 lo=$2 hi=$3; shift 3
    local k at
    for k in 1 2 3; do
        rm -f "$SHM/$r$k"; cp --sparse=always "$T/template" "$SHM/$r$k"
        at=$($FP scribble "$SHM/$r$k" "$lo" "$hi" $((SEED * 10 + k)))
        info "random[$r:$k]: bytes at $at"
        outcome "random[$r:$k]" "$r$k" "$@"
        rm -f "$SHM/$r$k"
    done
}
region sb0 0 272 full
region sb1 4096 $((4096 + 272)) full
region journal "$jstart" "$jend" refused full pre
region journal-tail "$jend" $((jstart + 4194304)) full
region ckpt-current "$NI_cur_off" $((NI_cur_off + NI_cur_bytes)) A-meta
region ckpt-other "$other_off" $((other_off + other_bytes)) full
region data "$data_off" $((data_off + 2097152)) full full-meta
EXPECT_CHANGED=a/marked region data-in-file "$marked_off" $((marked_off + 60000)) full-meta
for k in 1 2 3; do        # both superblock copies
    rm -f "$SHM/sbboth$k"; cp --sparse=always "$T/template" "$SHM/sbboth$k"
    $FP scribble "$SHM/sbboth$k" 0 272 $((SEED * 10 + k)) > /dev/null
    $FP scribble "$SHM/sbboth$k" 4096 $((4096 + 272)) $((SEED * 10 + k + 5)) > /dev/null
    outcome "random[sb-both:$k]" "sbboth$k" refused
    rm -f "$SHM/sbboth$k"
done

# While mounted: another process writes into the node file under the daemon, then kill -9.
# The daemon never reads its journal or checkpoints back while serving, so what counts is the
# next mount: data frames (contents only), the superblock copy the daemon is not using, the
# journal after its last record.
for r in data sb-other journal-tail; do
    rm -f "$SHM/live-$r"; cp --sparse=always "$T/template" "$SHM/live-$r"
    if ! pk_start "$mnt" --pkram="live-$r"; then fail "random-mounted[$r]:mount" "refused"; continue; fi
    node_info "$SHM/live-$r"
    case $r in
    data) lo=$marked_off hi=$((marked_off + 60000)) ;;
    sb-other) lo=$(((1 - NI_copy) * 4096)) hi=$(((1 - NI_copy) * 4096 + 272)) ;;
    journal-tail) lo=$jend hi=$((jstart + 4194304)) ;;
    esac
    at=$($FP scribble "$SHM/live-$r" "$lo" "$hi" $((SEED * 10 + 7)))
    info "random-mounted[$r]: bytes at $at while pid $PK_PID serves it"
    kill9
    if [ "$r" = data ]; then
        EXPECT_CHANGED=a/marked outcome "random-mounted[$r]" "live-$r" full-meta
    else
        outcome "random-mounted[$r]" "live-$r" full
    fi
    rm -f "$SHM/live-$r"
done
finish
