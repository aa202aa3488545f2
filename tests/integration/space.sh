#!/bin/bash
# space.sh -- truthful numbers: df/statfs on a node-backed mount counts the node's metadata
# (its checkpoint slots) as used, used + free = size, and free is what writes really get, in
# one file and in many small ones; df -i; du and st_blocks of sparse, punched, preallocated,
# truncated and small files against a kernel tmpfs; pkramfs-ctl status by kind (data,
# metadata, journal, superblock, free, frames held), mounted and unmounted, table and --json.
# docs/semantics.md "Space: df, du and st_blocks", docs/operations.md "Space".
. "$(dirname "$0")/lib.sh"
need_pk
need_ctl
[ -n "$PY" ] || { skip "space" "python3 not available"; finish; }

M=$T/pk
TM=$T/tmpfs
ctl() { "$CTL" --backend=shm --shm-dir="$SHM" --run-dir="$RUN" "$@"; }
MiB=1048576
FRAME=2097152

# statfs: block size, blocks, free, avail, files, ffree
sf() { stat -f -c '%S %b %f %a %c %d' "$1"; }
# a field of a flat JSON object on stdin
jget() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
status_json() { ctl --json status "$1" >"$T/status.json" 2>"$T/status.err"; }
js() { jget "$1" <"$T/status.json"; }

# ------------------------------------------------ df and df -i vs tmpfs, fresh node --
pk_start "$M" --pkram=sp --size=64m --nr-inodes=100k || { fail "df:mount" "did not mount"; finish; }
tmpfs_mount "$TM" size=64m,nr_inodes=100k,huge=never
read -r tS tb tf ta tc td <<<"$(sf "$TM")"
read -r pS pb pf pa pc pd <<<"$(sf "$M")"
assert_eq "df:size-as-tmpfs" $((tS * tb)) $((pS * pb))
assert_eq "df:block-size-as-tmpfs" "$tS" "$pS"
assert_eq "df-i:inode-limit-as-tmpfs" "$tc" "$pc"
assert_eq "df-i:inodes-free-as-tmpfs" "$td" "$pd"
assert_eq "df-i:output-as-tmpfs" "$(df -i --output=itotal,iused,iavail "$TM" | tail -1)" \
    "$(df -i --output=itotal,iused,iavail "$M" | tail -1)"
assert_eq "df:bavail=bfree" "$pf" "$pa"
# A fresh node holds one checkpoint image (the empty root, < 4 KiB): one block of metadata.
assert_eq "df:fresh-node-metadata-used" 4096 $(((pb - pf) * pS))
assert_eq "df:used-column" "$(((pb - pf) * pS))" "$(df -B1 --output=used "$M" | tail -1 | tr -d ' ')"
status_json sp
assert_eq "status:metadata=df-used" $(((pb - pf) * pS)) "$(js metadata_bytes)"
assert_eq "status:free=df-free" $((pf * pS)) "$(js free_bytes)"
assert_eq "status:limit=df-size" $((pb * pS)) "$(js limit_bytes)"

# ---------------------------------------------- one file: exactly what df promised --
for d in "$TM" "$M"; do
    free=$(( $(stat -f -c %a "$d") * 4096 ))
    dd if=/dev/zero of="$d/one" bs=64k count=$((free / 65536 + 2)) 2>"$T/dd.err"
    echo "$free $(stat -c %s "$d/one") $(stat -f -c %a "$d")" >"$T/one.$(basename "$d")"
    head -c 4096 /dev/zero >"$d/more" 2>/dev/null; echo "more-rc=$?" >>"$T/one.$(basename "$d")"
done
read -r free got after <"$T/one.pk"
assert_eq "one-file:writes-exactly-df-free" "$free" "$got"
assert_eq "one-file:df-free-after" 0 "$after"
assert_eq "one-file:next-write-enospc" "more-rc=1" "$(sed -n 2p "$T/one.pk")"
read -r tfree tgot tafter <"$T/one.tmpfs"
assert_eq "one-file:tmpfs-the-same" "$tfree $tfree 0" "$tfree $tgot $tafter"
read -r _ pb pf _ _ _ <<<"$(sf "$M")"
status_json sp
assert_eq "one-file:data+metadata=size" $((pb * 4096)) $(( $(js data_bytes) + $(js metadata_bytes) ))
rm -f "$M/one" "$M/more" "$TM/one" "$TM/more"
assert_eq "one-file:space-returns" 4096 $(( ($(stat -f -c '%b - %f' "$M")) * 4096 ))

# ------------------------------------- many small files: a page each, as on tmpfs --
# files of SIZE bytes until ENOSPC or COUNT; prints how many were written whole
cat >"$T/small.py" <<'EOF'
import os, sys
d, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = b"s" * size
n = 0
try:
    for i in range(count):
        with open(os.path.join(d, f"s{i}"), "wb") as f:
            f.write(data)
        n += 1
except OSError as e:
    pass
print(n)
EOF
for size in 4096 1000; do
    for d in "$TM" "$M"; do
        free=$(( $(stat -f -c %a "$d") * 4096 ))
        # each file takes one 4 KiB block: free/4096 fit, one more must not
        n=$("$PY" "$T/small.py" "$d" "$size" $((free / 4096 + 1)))
        echo "$((free / 4096)) $n $(stat -f -c %a "$d")" >"$T/small.$(basename "$d")"
        find "$d" -name 's*' -delete
    done
    read -r want got left <"$T/small.pk"
    assert_eq "small-files[$size]:as-many-as-df-promised" "$want" "$got"
    assert_eq "small-files[$size]:df-free-after" 0 "$left"
    read -r twant tgot tleft <"$T/small.tmpfs"
    assert_eq "small-files[$size]:tmpfs-the-same" "$twant $twant 0" "$twant $tgot $tleft"
done
umount "$TM"

# The inode structures of those files reached the checkpoint slots at the last checkpoint
# (none since mount: the journal holds them): now write many and unmount, and the next
# mount charges the bigger slots; used + free is still the size.
"$PY" "$T/small.py" "$M" 100 900 >/dev/null
pk_stop "$M"
status_json sp
meta=$(js metadata_bytes); data=$(js data_bytes); limit=$(js limit_bytes)
check "unmounted:metadata-grew" "metadata $meta after 900 files" test "$meta" -gt 8192
assert_eq "unmounted:data+metadata+free=size" "$limit" $((data + meta + $(js free_bytes)))
assert_eq "unmounted:data" $((900 * 4096)) "$data"
pk_start "$M" --pkram=sp || { fail "remount" "did not mount"; finish; }
read -r _ pb pf _ _ _ <<<"$(sf "$M")"
assert_eq "remount:df-used=data+metadata" $((data + meta)) $(((pb - pf) * 4096))
find "$M" -name 's*' -delete
pk_stop "$M"

# ------------------------------------------- du and st_blocks vs tmpfs --
pk_start "$M" --pkram=du --size=256m || { fail "du:mount" "did not mount"; finish; }
tmpfs_mount "$TM" size=256m,huge=never
mkfiles() {
    cd "$1" || return
    : >empty
    printf x >one-byte
    head -c 4095 /dev/urandom >b4095
    head -c 4097 /dev/urandom >b4097
    head -c 3000000 /dev/urandom >b3m
    truncate -s 1G sparse-empty
    truncate -s 1G sparse; dd if=/dev/urandom of=sparse bs=4096 count=3 seek=131072 conv=notrunc 2>/dev/null
    head -c $((4 * MiB)) /dev/urandom >punched; fallocate -p -o $MiB -l $((MiB + 12345)) punched
    : >keep-size; fallocate -n -l $((3 * MiB + 100)) keep-size
    fallocate -l $((2 * MiB)) prealloc
    fallocate -l 1000 prealloc-small
    head -c $((2 * MiB)) /dev/urandom >trunc-down; truncate -s 10000 trunc-down
    printf y >trunc-up; truncate -s $((5 * MiB)) trunc-up
    head -c $MiB /dev/urandom >trunc-zero; truncate -s 0 trunc-zero
    : >beyond-eof; fallocate -n -o $((8 * MiB)) -l $MiB beyond-eof; printf z >>beyond-eof
    ln -s short link-short
    ln -s "$(printf 'l%.0s' $(seq 200))" link-long
    mkdir dir; touch dir/a dir/b
    ln b4097 hardlink
    cd / || return
}
mkfiles "$TM"; mkfiles "$M"
sync
( cd "$TM" && find . -printf '%p %y %s %b\n' | sort ) >"$T/blocks.tmpfs"
( cd "$M" && find . -printf '%p %y %s %b\n' | sort ) >"$T/blocks.pk"
# directories have no blocks on either (tmpfs: 0, pkramfs: 0)
assert_files_eq "st_blocks:every-file-as-tmpfs" "$T/blocks.tmpfs" "$T/blocks.pk"
assert_eq "du:tree-as-tmpfs" "$(du -sB1 "$TM" | cut -f1)" "$(du -sB1 "$M" | cut -f1)"
assert_eq "du:apparent-as-tmpfs" "$(du -sB1 --apparent-size "$TM" | cut -f1)" "$(du -sB1 --apparent-size "$M" | cut -f1)"
assert_eq "st_blocks:sparse-holds-3-blocks" 24 "$(stat -c %b "$M/sparse")"
assert_eq "st_blocks:keep-size-counted" "$(( (3 * MiB + 4096) / 512 )) 0" "$(stat -c '%b %s' "$M/keep-size")"
# statfs: pkramfs's used is tmpfs's used (data) plus its metadata blocks
read -r _ tb tf _ _ _ <<<"$(sf "$TM")"
read -r _ pb pf _ _ _ <<<"$(sf "$M")"
status_json du
assert_eq "df:data-used-as-tmpfs" $(((tb - tf) * 4096)) "$(js data_bytes)"
assert_eq "df:used=tmpfs-used+metadata" $(((tb - tf) * 4096 + $(js metadata_bytes))) $(((pb - pf) * 4096))
rm -f "$M/punched" "$TM/punched" "$M/prealloc" "$TM/prealloc"
read -r _ tb tf _ _ _ <<<"$(sf "$TM")"
read -r _ pb pf _ _ _ <<<"$(sf "$M")"
assert_eq "df:space-returns-as-tmpfs" $((tb - tf)) $((pb - pf - $(js metadata_bytes) / 4096))
umount "$TM"

# ---------------------------------------------- pkramfs-ctl status by kind --
# mounted: json from the daemon; the table says the same
status_json du
for k in data_bytes metadata_bytes free_bytes limit_bytes journal_bytes journal_used_bytes \
    superblock_bytes data_held_bytes metadata_held_bytes held_bytes; do
    v=$(js "$k" 2>/dev/null)
    check "status-json:$k" "missing or not a number: '$v'" test -n "$v" -a "$v" -eq "$v"
done
assert_eq "status:data+metadata+free=limit" "$(js limit_bytes)" \
    $(( $(js data_bytes) + $(js metadata_bytes) + $(js free_bytes) ))
assert_eq "status:superblock-frame" $FRAME "$(js superblock_bytes)"
assert_eq "status:journal-frames" $((8 * FRAME)) "$(js journal_bytes)"
check "status:journal-in-use" "journal_used_bytes $(js journal_used_bytes)" test "$(js journal_used_bytes)" -gt 0
# frames held: a sparse node file's allocated blocks are its frames; each kind's frames add up
held_frames=$(( $(js held_bytes) / FRAME ))
assert_eq "status:held=superblock+journal+checkpoints+data(frames)" \
    $(( ($(js superblock_bytes) + $(js journal_bytes) + $(js metadata_held_bytes) + $(js data_held_bytes)) / FRAME )) \
    "$held_frames"
# ... and the node's file objects' pages (their tmpfs's used blocks), if it has any
objects_used=0
is_mounted "$SHM/.du.objects" && objects_used=$(df -B1 --output=used "$SHM/.du.objects" | tail -1)
assert_eq "status:held-is-node-file+objects" \
    "$(( ($(du -B1 "$SHM/du" | cut -f1) + objects_used) / FRAME ))" "$held_frames"
check "status:data-frames-cover-data" "data $(js data_bytes) in $(js data_held_bytes)" \
    test "$(js data_held_bytes)" -ge "$(js data_bytes)"
ctl status du >"$T/status.txt" 2>&1
hb() { "$PY" -c '
import sys
n = float(sys.argv[1]); u = 0; units = ["B", "KiB", "MiB", "GiB", "TiB"]
if n < 1024: print(f"{int(n)} B"); sys.exit()
while n >= 1024 and u < 4: n /= 1024; u += 1
print(f"{n:.1f} {units[u]}")' "$1"; }
row() { awk -v k="$1" '$1 == k' "$T/status.txt" | sed 's/  */ /g; s/^ //'; }
fr() { if [ "$1" = 1 ]; then echo "1 frame"; else echo "$1 frames"; fi; }
assert_eq "status-table:data" "data $(hb "$(js data_bytes)") $(hb "$(js data_held_bytes)") ($(fr $(( $(js data_held_bytes) / FRAME ))))" "$(row data)"
assert_eq "status-table:metadata" "metadata $(hb "$(js metadata_bytes)") $(hb "$(js metadata_held_bytes)") ($(fr $(( $(js metadata_held_bytes) / FRAME ))))" "$(row metadata)"
assert_eq "status-table:free" "free $(hb "$(js free_bytes)") -" "$(row free)"
assert_contains "status-table:journal" "$(row journal)" "journal - 16.0 MiB (8 frames),"
assert_eq "status-table:total" "total 256.0 MiB $(hb "$(js held_bytes)") ($(fr "$held_frames"))" "$(row total)"
mounted_data=$(js data_bytes)
pk_stop "$M"
# unmounted: read offline, the same data; both slots now hold an image
status_json du
assert_eq "status-offline:mounted-false" False "$(js mounted)"
assert_eq "status-offline:data-as-mounted" "$mounted_data" "$(js data_bytes)"
assert_eq "status-offline:data+metadata+free=limit" "$(js limit_bytes)" \
    $(( $(js data_bytes) + $(js metadata_bytes) + $(js free_bytes) ))
assert_eq "status-offline:two-slots" 8192 "$(js metadata_bytes)"
assert_eq "status-offline:held=sum(frames)" \
    $(( ($(js superblock_bytes) + $(js journal_bytes) + $(js metadata_held_bytes) + $(js data_held_bytes)) / FRAME )) \
    $(( $(js held_bytes) / FRAME ))
ctl status du >"$T/status.txt" 2>&1
for k in data metadata journal superblock free total; do
    check "status-offline-table:$k" "no '$k' row in: $(cat "$T/status.txt")" test -n "$(row "$k")"
done
assert_eq "status-offline-table:free" "free $(hb "$(js free_bytes)") -" "$(row free)"

finish
