#!/usr/bin/env bash
# Damaged node files: each is refused with one line naming the problem and keeps every byte, or
# is recovered exactly as docs/format.md says (other superblock copy, older checkpoint slot, torn
# last journal record dropped). node_image.py parses and damages the format (format.h).
# shellcheck disable=SC2154  # NI_* variables come from node_info (eval)
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl

NI="$PY $PKIT_LIBDIR/node_image.py"
mnt=$T/mnt
tree_of() { (cd "$1" && find . -printf '%P %y %m %u %g %s %n %l %T@\n' | sort && find . -type f -exec sha256sum {} + | sort && getfattr -R -d -m - . 2>/dev/null); }
# node_info FILE: the newest valid superblock and the journal as shell variables (NI_*)
node_info() { eval "$($NI info "$1" | sed 's/^/NI_/')"; }
sha() { sha256sum < "$1"; }
kill9() { kill -KILL "$PK_PID"; wait "$PK_PID" 2>/dev/null; umount -l "$mnt" 2>/dev/null; }

if [ "$($NI selftest)" != ok ]; then fail "corrupt:crc32c-selftest" "node_image.py"; finish; fi

# attempt NAME: start pkramfs-fuse -f on NAME. Sets MOUNTED (1: it mounted, PK_PID serves it),
# RC (exit status when it did not mount) and ERR (its stderr).
attempt() {
    PKIT_SEQ=$((PKIT_SEQ + 1))
    ERR=$T/attempt.$PKIT_SEQ.err
    MOUNTED=0 RC=
    env --default-signal=INT,QUIT,TERM,HUP \
        "$PK" -f --pkram="$1" --shm-dir="$SHM" --run-dir="$RUN" "$mnt" >/dev/null 2>"$ERR" &
    local pid=$! i
    PKIT_PIDS+=("$pid")
    for ((i = 0; i < 200; i++)); do
        if is_fuse_mounted "$mnt"; then MOUNTED=1; PK_PID=$pid; return; fi
        if ! alive "$pid"; then wait "$pid"; RC=$?; return; fi
        sleep 0.05
    done
    kill -KILL "$pid"; wait "$pid"; RC=timeout
}
# ctl_check NAME: sets CHECK_RC and CHECK_OUT
ctl_check() {
    CHECK_OUT=$("$CTL" --shm-dir="$SHM" --run-dir="$RUN" check "$1" 2>&1); CHECK_RC=$?
}
# from_template NAME: a fresh copy of the template as node NAME
from_template() { rm -f "$SHM/$1"; cp --sparse=always "$T/template" "$SHM/$1"; }

# expect_refused CASE NAME NEEDLE: mounting NAME fails with one line containing NEEDLE, the
# node keeps every byte, and pkramfs-ctl check reports a problem.
expect_refused() {
    local c=$1 name=$2 needle=$3 before
    before=$(sha "$SHM/$name")
    attempt "$name"
    if [ "$MOUNTED" = 1 ]; then
        fail "corrupt:$c:refused" "it mounted; tree against the undamaged node:"
        tree_of "$mnt" | diff "$T/tree.full" - | details - 8
        pk_stop "$mnt"
        return
    fi
    assert_ne "corrupt:$c:refused" 0 "$RC"
    assert_one_line_err "corrupt:$c:one-line" "$ERR"
    assert_contains "corrupt:$c:says-why" "$(cat "$ERR")" "$needle"
    assert_eq "corrupt:$c:node-untouched" "$before" "$(sha "$SHM/$name")"
    ctl_check "$name"
    assert_eq "corrupt:$c:check-exit" 1 "$CHECK_RC"
    assert_contains "corrupt:$c:check-names-problem" "$CHECK_OUT" "$needle"
    assert_eq "corrupt:$c:check-untouched" "$before" "$(sha "$SHM/$name")"
}
# without the sha256 lines of tree_of: names, types, modes, owners, sizes, links, mtimes, xattrs
meta_of() { grep -Ev '^[0-9a-f]{64}  ' "$1"; }
# expect_mounts CASE NAME EXPECTED_TREE_FILE [meta]: mounts, the tree is EXPECTED (with `meta`:
# all but file contents, whose differences are listed as info), and after a clean unmount
# pkramfs-ctl check is clean.
expect_mounts() {
    local c=$1 name=$2 want=$3 only=${4:-}
    attempt "$name"
    if [ "$MOUNTED" != 1 ]; then
        fail "corrupt:$c:mounts" "refused (status $RC)"; details "$ERR" 5
        return
    fi
    pass "corrupt:$c:mounts"
    tree_of "$mnt" > "$T/$c.tree"
    if [ "$only" = meta ]; then
        assert_files_eq "corrupt:$c:tree-metadata" <(meta_of "$want") <(meta_of "$T/$c.tree")
        diff <(grep -E '^[0-9a-f]{64}  ' "$want") <(grep -E '^[0-9a-f]{64}  ' "$T/$c.tree") |
            sed -n 's/^> [0-9a-f]*  \.\//# contents differ from the checkpoint time: /p'
    else
        assert_files_eq "corrupt:$c:tree" "$want" "$T/$c.tree"
    fi
    pk_stop "$mnt"
    ctl_check "$name"
    if [ "$CHECK_RC" = 0 ]; then pass "corrupt:$c:check-clean-after-unmount"
    else fail "corrupt:$c:check-clean-after-unmount" "exit $CHECK_RC"; details - 5 <<<"$CHECK_OUT"; fi
}

# The nodes here are copies of one node file (from_template): their files' data must be in the
# node, not in file objects beside it (objects.sh covers those), so no passthrough.
export PKRAMFS_TUNE=passthrough=0

# ------------------------------------------------------------------------------ template --
# Session 1: tree A, clean unmount (checkpoint generation 2). Session 2: more (tree B), clean
# unmount (generation 3, the other slot). Session 3: changes that live only in the journal, then
# kill -9. So the current slot holds A+B, the other slot A, and the journal the session-3 ops.
pk_start "$mnt" --pkram=tpl --size=64m || { fail "corrupt:template" "no mount"; finish; }
(cd "$mnt" && mkdir -p a/b/c && echo hello > a/f && ln a/f a/hard && ln -s f a/sym &&
    mkfifo a/fifo && mknod a/null c 1 3 && setfattr -n user.k -v v1 a/f &&
    setfattr -n trusted.t -v t a/f && head -c 300K /dev/urandom > a/big &&
    truncate -s 16M a/sparse && printf tail >> a/sparse && chmod 4755 a/big &&
    chown 65534:65534 a/b && touch -d '2001-02-03 04:05:06.123456789' a/b/c &&
    ln -s "$(printf '%0200d' 0)" a/longlink)
tree_of "$mnt" > "$T/tree.A"
pk_stop "$mnt"
pk_start "$mnt" --pkram=tpl || { fail "corrupt:template" "no remount"; finish; }
(cd "$mnt" && mkdir b && head -c 70000 /dev/urandom > b/data && setfattr -n user.b -v bee b &&
    rm a/hard && mv a/sym b/sym)
tree_of "$mnt" > "$T/tree.B"
pk_stop "$mnt"
pk_start "$mnt" --pkram=tpl || { fail "corrupt:template" "no third mount"; finish; }
(cd "$mnt" && mkdir j && head -c 9000 /dev/urandom > j/data && setfattr -n user.j -v jay j/data &&
    mv b/data j/moved && rm a/f && truncate -s 100 a/big && chmod 700 a/b/c && sync -f .)
# Reading the tree updates atimes (relatime: journal records); a second reading does not.
tree_of "$mnt" > /dev/null
tree_of "$mnt" > "$T/tree.pre"     # before the last operation
node_info "$SHM/tpl"; n1=$NI_jrecs
# The last operation: one XATTR_SET record, on a fifo, that reading the tree never touches.
setfattr -n trusted.last -v 1 "$mnt/a/fifo"
node_info "$SHM/tpl"; n2=$NI_jrecs
tree_of "$mnt" > "$T/tree.full"
node_info "$SHM/tpl"; n3=$NI_jrecs
kill9
assert_eq "corrupt:template:last-op-is-one-record" "$((n1 + 1)) $((n1 + 1))" "$n2 $n3"
cp --sparse=always "$SHM/tpl" "$T/template"
node_info "$T/template"
info "template: newest superblock copy $NI_copy (sequence $NI_sequence), current slot" \
    "$NI_current_slot (generation $(eval echo \$NI_slot${NI_current_slot}_generation))," \
    "other slot generation $(eval echo \$NI_slot$((1 - NI_current_slot))_generation)," \
    "journal epoch $NI_journal_epoch with $NI_jrecs records, file $(stat -c %s "$T/template") bytes"
ck=${NI_current_slot}; ok=$((1 - ck))
cur_off=$NI_cur_off cur_bytes=$NI_cur_bytes
other_off=$(eval echo \$NI_slot${ok}_off) other_bytes=$(eval echo \$NI_slot${ok}_bytes)
last=$((NI_jrecs - 1))
last_off=$(eval echo \$NI_jrec_${last}_off)
assert_eq "corrupt:template:last-record-is-xattr-set" 7 "$(eval echo \$NI_jrec_${last}_type)"
assert_eq "corrupt:template:journal-has-records" yes "$([ "$NI_jrecs" -ge 5 ] && echo yes)"

# ------------------------------------------------------------------------------- pristine --
from_template pristine
expect_mounts pristine pristine "$T/tree.full"

# ------------------------------------------------------------------- (a) one superblock copy --
# A flipped byte in either copy: the other copy is valid and describes the same checkpoint and
# journal epoch (only the state and sequence differ), so the whole tree comes back.
for copy in 0 1; do
    from_template sb$copy
    $NI flip "$SHM/sb$copy" $((copy * 4096 + 100))
    expect_mounts "sb-copy$copy-flipped" sb$copy "$T/tree.full"
done

# ---------------------------------------------------------------------- (b) both copies --
from_template sbboth
$NI flip "$SHM/sbboth" 100
$NI flip "$SHM/sbboth" $((4096 + 100))
expect_refused sb-both-flipped sbboth "superblock CRC mismatch"
from_template sbmagic
printf 'XXXXXXXX' | dd of="$SHM/sbmagic" bs=1 seek=0 conv=notrunc 2>/dev/null
printf 'XXXXXXXX' | dd of="$SHM/sbmagic" bs=1 seek=4096 conv=notrunc 2>/dev/null
expect_refused sb-both-magic sbmagic "unknown magic"

# ------------------------------------------------------------------------- (c) version 6 --
# A version this build does not know yet (format.h: it reads 1 to 5).
from_template v4
$NI set-version "$SHM/v4" 0 6
$NI set-version "$SHM/v4" 1 6
expect_refused version-6 v4 "format version 6 is newer than this build reads (version 5)"
# Only one copy at version 6 (a half-finished upgrade): the other copy is used.
from_template v4one
$NI set-version "$SHM/v4one" "$NI_copy" 6
expect_mounts version-6-one-copy v4one "$T/tree.full"
# Version 0 never existed.
from_template v0
$NI set-version "$SHM/v0" 0 0
$NI set-version "$SHM/v0" 1 0
expect_refused version-0 v0 "unknown format version 0"

# ------------------------------------------------------------------ (d) checkpoint slots --
# The current slot holds generation 3 (tree B) and the journal follows it; the other slot holds
# generation 2 (tree A). A flipped byte in the current image falls back to tree A with a warning:
# the session-2 changes (in no valid checkpoint) and the journal (of the newer epoch) are lost.
# File contents are not part of a checkpoint: blocks that tree A's files had and that later
# operations freed and reused (a/big, truncated in session 3) hold the newer data, so only the
# metadata of tree A is asserted; differing contents are listed.
from_template ckcur
$NI flip "$SHM/ckcur" $((cur_off + cur_bytes / 2))
before=$(sha "$SHM/ckcur")
ctl_check ckcur
assert_eq "corrupt:ckpt-current:check-exit" 1 "$CHECK_RC"
assert_contains "corrupt:ckpt-current:check-warns" "$CHECK_OUT" "checkpoint slot $ck fails its CRC"
assert_eq "corrupt:ckpt-current:check-untouched" "$before" "$(sha "$SHM/ckcur")"
expect_mounts ckpt-current-flipped ckcur "$T/tree.A" meta
assert_contains "corrupt:ckpt-current:warning" "$(cat "$ERR")" "using the older checkpoint"
# A flipped byte in the other (older) slot: never read, the mount is whole.
from_template ckold
$NI flip "$SHM/ckold" $((other_off + other_bytes / 2))
expect_mounts ckpt-older-flipped ckold "$T/tree.full"
# Both slots damaged: refused.
from_template ckboth
$NI flip "$SHM/ckboth" $((cur_off + cur_bytes / 2))
$NI flip "$SHM/ckboth" $((other_off + other_bytes / 2))
expect_refused ckpt-both-flipped ckboth "checkpoint slot $ck fails its CRC"
# A node that was never cleanly unmounted has one checkpoint (the empty first one) and an empty
# other slot: damage to it is refused.
if pk_start "$mnt" --pkram=oneslot --size=16m; then
    echo x > "$mnt/x"; sync -f "$mnt"
    kill9
    node_info "$SHM/oneslot"
    assert_eq "corrupt:ckpt-only-slot:layout" "0 0" \
        "$(eval echo \$NI_slot$((1 - NI_current_slot))_generation) $NI_current_slot"
    $NI flip "$SHM/oneslot" $((NI_cur_off + 8))
    expect_refused ckpt-only-slot-flipped oneslot "checkpoint slot 0 fails its CRC"
fi

# ---------------------------------------------------------------------------- (e, f) journal --
# A flipped byte in the last record: a torn record, dropped; the tree is the one before it.
from_template jlast
$NI flip "$SHM/jlast" $((last_off + 40))
expect_mounts journal-last-flipped jlast "$T/tree.pre"
from_template jlastcrc
$NI flip "$SHM/jlastcrc" $((last_off + 4))
expect_mounts journal-last-crc-flipped jlastcrc "$T/tree.pre"
# A flipped byte in an earlier record, followed by valid ones: corruption, refused.
jmid=$(eval echo \$NI_jrec_$((last - 2))_off)
from_template jmid
$NI flip "$SHM/jmid" $((jmid + 40))
expect_refused journal-middle-payload jmid "journal record"
from_template jmidcrc
$NI flip "$SHM/jmidcrc" $((jmid + 4))
expect_refused journal-middle-crc jmidcrc "journal record"
# The same in the record's magic, sequence or length fields (header bytes 0, 8, 28).
for at in 0 8 28; do
    from_template jmidh$at
    $NI flip "$SHM/jmidh$at" $((jmid + at))
    expect_refused "journal-middle-header-byte$at" jmidh$at "journal record"
done

# -------------------------------------------------------------------------- (g) truncated --
from_template trunc4m
truncate -s 4M "$SHM/trunc4m"
expect_refused truncated-in-journal trunc4m "shorter"
from_template truncckpt
truncate -s $((NI_ckpt_first_frame * 2097152)) "$SHM/truncckpt"
expect_refused truncated-checkpoints truncckpt "shorter"
from_template trunc5000
truncate -s 5000 "$SHM/trunc5000"
# Copy 0 is whole, copy 1 cut: copy 0 is used and says the node is larger.
expect_refused truncated-in-superblock trunc5000 "shorter"

# ---------------------------------------------------------------------------- (h) garbage --
head -c 8M /dev/urandom > "$SHM/garbage"
expect_refused garbage garbage "unknown magic"
head -c 100 /dev/urandom > "$SHM/garbage100"
expect_refused garbage-100-bytes garbage100 "too short"

# ----------------------------------------------------------------------- (j) crafted nodes --
# Values with valid CRCs that describe something impossible (docs/security.md). A slot at frame
# 2^43 + k: (first_frame + nr_frames) * 2 MiB wraps to k's offset, so the image still reads back;
# the restored slot, or the other one (which was mounted, then swept frame by frame at unmount,
# endlessly). Then a slot past the checkpoint reserve, and nr_frames that wrap the end.
wrap=$((1 << 43))
from_template craftcur
$NI set-slot "$SHM/craftcur" cur first_frame $((wrap + $(eval echo \$NI_slot${ck}_first_frame)))
expect_refused crafted-slot-wraps-current craftcur "checkpoint slot $ck has an impossible location"
from_template craftother
$NI set-slot "$SHM/craftother" other first_frame $((wrap + $(eval echo \$NI_slot${ok}_first_frame)))
expect_refused crafted-slot-wraps-other craftother "checkpoint slot $ok has an impossible location"
from_template craftfar
$NI set-slot "$SHM/craftfar" other first_frame $((NI_ckpt_first_frame + 100000))
expect_refused crafted-slot-past-reserve craftfar "checkpoint slot $ok has an impossible location"
from_template craftlen
$NI set-slot "$SHM/craftlen" other nr_frames $(((1 << 63) - 1))
expect_refused crafted-slot-frames-wrap craftlen "checkpoint slot $ok has an impossible location"
# next_ino 2^64-1 in the checkpoint (then `touch n1; touch n2` as nobody was a use-after-free).
from_template craftino
$NI set-next-ino "$SHM/craftino" 18446744073709551615
expect_refused crafted-next-ino-max craftino "next inode number 18446744073709551615"

# ------------------------------------------------------------------------------ (i) empty --
# A node file that exists but is empty was emptied behind the daemon's back, or its creation was
# interrupted: refused like any truncated node (only a file the daemon creates itself is new).
: > "$SHM/empty"
expect_refused empty empty "empty"
finish
