#!/bin/bash
# manpages.sh -- the man pages in docs/man render without warnings, and they cannot drift from
# the programs: every option that "pkramfs-fuse --help" and "pkramfs-ctl [COMMAND] --help" print
# is in the page, every command of pkramfs-ctl is, every -o key of pkramfs-fuse is, and every
# option or command the pages define (a .TP tag) still exists in --help.
. "$(dirname "$0")/lib.sh"

MAN=${PKIT_MAN_DIR:-$PKIT_REPO/docs/man}   # (another directory: to test this test)

if ! command -v groff >/dev/null; then
    fail groff "groff is not installed: apt-get install groff-base (tools/install-deps)"
    finish
fi

# ------------------------------------------------------------------ rendering --
for page in pkramfs-fuse.8 pkramfs-ctl.8 pkram.4; do
    if [ ! -f "$MAN/$page" ]; then fail "render:$page" "missing $MAN/$page"; continue; fi
    # every groff warning (-ww), at the usual widths
    for width in 65 80 120; do
        groff -man -Tutf8 -ww -z -rLL="${width}n" "$MAN/$page" >"$T/err" 2>&1
        [ -s "$T/err" ] && break
    done
    if [ -s "$T/err" ]; then
        fail "render:$page" "groff -man -ww warns (line length ${width}n)"; details "$T/err"
    else
        pass "render:$page"
    fi
    if command -v man >/dev/null; then
        MANWIDTH=80 man --warnings=w -l "$MAN/$page" >"$T/out" 2>"$T/err"
        if [ -s "$T/err" ] || [ ! -s "$T/out" ]; then
            fail "man-l:$page" "man -l warns or prints nothing"; details "$T/err"
        else
            pass "man-l:$page"
        fi
    fi
    # NAME section in the form whatis/apropos (mandb) can read: "name \- description"
    if sed -n '/^\.SH NAME/{n;p;}' "$MAN/$page" | grep -q '^[a-z.-]* \\- '; then
        pass "name-line:$page"
    else
        fail "name-line:$page" "the line after .SH NAME is not 'name \\- description'"
    fi
done

# The page as plain text, one paragraph a line (no hyphenation: the pages say .nh).
plain() { groff -man -Tascii -P-cbou -rLL=5000n "$1" 2>/dev/null; }
# has_option TEXTFILE OPT: OPT (--x or -x) as a word of its own
has_option() { grep -qE -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|\$)" "$1"; }
# The options of a --help text: its first column ("  -f,--foreground  ...", "  --size TEXT").
help_options() { sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n' | grep -E '^--?[A-Za-z]'; }
# The options a page defines: every .TP tag that starts with one.
page_options() {
    awk 'tp { print; tp = 0 } /^\.TP/ { tp = 1 }' "$1" | sed 's/\\-/-/g; s/\\f[BIRP]//g; s/"//g' |
        awk '$2 ~ /^-/ { for (i = 2; i <= NF; i++) print $i }' |
        grep -oE -- '^--?[A-Za-z][A-Za-z0-9-]*' | sort -u
}
# The commands a page defines: the .TP tags of its COMMANDS section that are not options.
page_commands() {
    awk '/^\.SH/ { sec = $0 } sec ~ /COMMANDS/ && tp { if ($2 !~ /^(\\)?-/) print $2; tp = 0 }
         /^\.TP/ { tp = 1 }' "$1" | tr -d '"' | sort -u
}

# check_options PROGRAM PAGE HELPFILE: every option of HELPFILE is in PAGE and back.
check_options() {
    local prog=$1 page=$2 help=$3 o missing=() stale=()
    plain "$page" >"$T/page.txt"
    help_options <"$help" | sort -u >"$T/help-opts"
    if [ ! -s "$T/help-opts" ]; then
        fail "$prog:help-parsed" "no options found in $prog --help"; details "$help"
        return
    fi
    pass "$prog:help-parsed ($(wc -l <"$T/help-opts") options)"
    while read -r o; do has_option "$T/page.txt" "$o" || missing+=("$o"); done <"$T/help-opts"
    if [ ${#missing[@]} = 0 ]; then pass "$prog:options-in-page"
    else fail "$prog:options-in-page" "$prog --help has ${missing[*]}, $(basename "$page") does not"; fi
    page_options "$page" >"$T/page-opts"
    while read -r o; do grep -qxF -- "$o" "$T/help-opts" || stale+=("$o"); done <"$T/page-opts"
    if [ ${#stale[@]} = 0 ]; then pass "$prog:page-options-exist ($(wc -l <"$T/page-opts") defined)"
    else fail "$prog:page-options-exist" "$(basename "$page") defines ${stale[*]}, $prog --help does not"; fi
}

# ---------------------------------------------------------------- pkramfs-fuse --
if "$PK" --help >"$T/fuse-help" 2>&1; then
    pass fuse:help
    check_options pkramfs-fuse "$MAN/pkramfs-fuse.8" "$T/fuse-help"
    # the -o keys: "(size=, nr_inodes=, ...)" in the -o line of --help
    keys=$(grep -E '^  -o ' "$T/fuse-help" | grep -oE '\(([a-z_]+=, )+[a-z_]+=\)' |
        grep -oE '[a-z_]+=' | sort -u)
    missing=()
    for k in $keys; do grep -qF -- "$k" "$T/page.txt" || missing+=("$k"); done
    if [ -z "$keys" ]; then fail fuse:o-keys "no key= found in the -o line of --help"
    elif [ ${#missing[@]} = 0 ]; then pass "fuse:o-keys ($(wc -w <<<"$keys") keys)"
    else fail fuse:o-keys "pkramfs-fuse.8 lacks -o ${missing[*]}"; fi
    # the positional arguments and the mount(8) form
    if grep -q 'mountpoint' "$T/page.txt" && grep -q 'mount -t fuse.pkramfs-fuse' "$T/page.txt"; then
        pass fuse:synopsis
    else
        fail fuse:synopsis "pkramfs-fuse.8 lacks the mountpoint argument or the mount -t form"
    fi
else
    fail fuse:help "pkramfs-fuse --help failed"; details "$T/fuse-help"
fi

# ----------------------------------------------------------------- pkramfs-ctl --
if "$CTL" --help >"$T/ctl-help" 2>&1; then
    pass ctl:help
    cmds=$(sed -n '/^Subcommands:/,/^$/p' "$T/ctl-help" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
    # the options of every command too ("pkramfs-ctl export --help")
    cp "$T/ctl-help" "$T/ctl-help-all"
    for c in $cmds; do
        "$CTL" "$c" --help >"$T/ctl-help-$c" 2>&1 || fail "ctl:help:$c" "pkramfs-ctl $c --help failed"
        cat "$T/ctl-help-$c" >>"$T/ctl-help-all"
    done
    check_options pkramfs-ctl "$MAN/pkramfs-ctl.8" "$T/ctl-help-all"
    page_commands "$MAN/pkramfs-ctl.8" >"$T/page-cmds"
    missing=() stale=()
    for c in $cmds; do grep -qxF "$c" "$T/page-cmds" || missing+=("$c"); done
    while read -r c; do grep -qxF "$c" <<<"$cmds" || stale+=("$c"); done <"$T/page-cmds"
    if [ -z "$cmds" ]; then fail ctl:commands "no Subcommands: in pkramfs-ctl --help"
    elif [ ${#missing[@]} = 0 ] && [ ${#stale[@]} = 0 ]; then
        pass "ctl:commands ($(wc -w <<<"$cmds"): $(tr '\n' ' ' <<<"$cmds"))"
    else
        fail ctl:commands "in --help only: ${missing[*]:-none}; in the page only: ${stale[*]:-none}"
    fi
    # the exit codes of the footer ("Exit status: 0 done; 1 failed ...; 2 usage error")
    codes=$(grep '^Exit status:' "$T/ctl-help" | grep -oE '[:;] [0-9]+ ' | grep -oE '[0-9]+' | sort -u)
    missing=()
    for c in $codes; do
        awk '/^\.SH/ { sec = $0 } sec ~ /EXIT STATUS/ && tp { print; tp = 0 } /^\.TP/ { tp = 1 }' \
            "$MAN/pkramfs-ctl.8" | grep -qx ".B $c" || missing+=("$c")
    done
    if [ -z "$codes" ]; then fail ctl:exit-codes "no exit codes in the footer of --help"
    elif [ ${#missing[@]} = 0 ]; then pass "ctl:exit-codes ($(tr '\n' ' ' <<<"$codes"))"
    else fail ctl:exit-codes "EXIT STATUS of pkramfs-ctl.8 lacks ${missing[*]}"; fi
else
    fail ctl:help "pkramfs-ctl --help failed"; details "$T/ctl-help"
fi

finish
