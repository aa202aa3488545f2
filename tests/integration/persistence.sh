#!/usr/bin/env bash
# Persistence through real mounts: clean unmount/remount keeps the tree, and kill -9 of the
# daemon at random moments loses no acknowledged operation (crash.py).
. "$(dirname "$0")/lib.sh"
need_pk

mnt=$T/mnt
tree_of() { (cd "$1" && find . -printf '%P %y %m %u %g %s %n %l %T@\n' | sort && find . -type f -exec sha256sum {} + | sort && getfattr -R -d -m - . 2>/dev/null); }

# --- clean unmount and remount keeps everything
if pk_start "$mnt" --pkram=keep --size=256m; then
    (cd "$mnt" && mkdir -p a/b/c && echo hello > a/f && ln a/f a/hard && ln -s f a/sym &&
        mkfifo a/fifo && mknod a/null c 1 3 && setfattr -n user.k -v v1 a/f &&
        setfattr -n trusted.t -v t a/f && head -c 3M /dev/urandom > a/big &&
        truncate -s 2G a/sparse && printf tail >> a/sparse && chmod 4755 a/big &&
        chown 65534:65534 a/b && touch -d '2001-02-03 04:05:06.123456789' a/b/c &&
        ln -s "$(printf '%0200d' 0)" a/longlink && rm a/hard)
    tree_of "$mnt" > "$T/before"
    pk_stop "$mnt"
    assert_eq "persist:node-file-kept" "yes" "$([ -s "$SHM/keep" ] && echo yes)"
    if pk_start "$mnt" --pkram=keep --size=256m; then
        tree_of "$mnt" > "$T/after"
        assert_files_eq "persist:clean-remount-identical-tree" "$T/before" "$T/after"
        echo more > "$mnt/a/more"
        pk_stop "$mnt"
    fi
fi

# --- a node written by a different size request keeps its own geometry and contents
if pk_start "$mnt" --pkram=keep --size=64m; then
    assert_eq "persist:remount-keeps-data" "more" "$(cat "$mnt/a/more")"
    pk_stop "$mnt"
fi

# --- a corrupt superblock is refused and the node is left untouched
cp "$SHM/keep" "$T/keep.copy"
printf 'XXXXXXXX' | dd of="$SHM/keep" bs=1 seek=0 conv=notrunc 2>/dev/null
printf 'XXXXXXXX' | dd of="$SHM/keep" bs=1 seek=4096 conv=notrunc 2>/dev/null
sum_before=$(sha256sum < "$SHM/keep")
"$PK" -f --pkram=keep --shm-dir="$SHM" --run-dir="$RUN" "$mnt" 2> "$T/err"; rc=$?
assert_ne "persist:corrupt-superblock-refused" "0" "$rc"
assert_one_line_err "persist:corrupt-superblock-one-line" "$T/err"
assert_contains "persist:corrupt-superblock-says-why" "$(cat "$T/err")" "magic"
assert_eq "persist:corrupt-node-untouched" "$sum_before" "$(sha256sum < "$SHM/keep")"

# --- a truncated node file is refused
cp "$T/keep.copy" "$SHM/keep"
truncate -s 4M "$SHM/keep"
"$PK" -f --pkram=keep --shm-dir="$SHM" --run-dir="$RUN" "$mnt" 2> "$T/err"; rc=$?
assert_ne "persist:truncated-node-refused" "0" "$rc"
assert_contains "persist:truncated-node-says-why" "$(cat "$T/err")" "shorter"

# --- kill -9 at random moments
python3 "$PKIT_LIBDIR/crash.py" "$PK" "$T/crash" "${PKIT_CRASH_ROUNDS:-20}" "${PKIT_SEED:-$RANDOM}" || PKIT_FAIL=$((PKIT_FAIL + 1))
finish
