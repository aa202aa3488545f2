# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
# Kernels and QEMU builds from Debian's archive for tools/vm-test, sourced by
# it (needs CACHE, log, die).  Nothing here changes the host's apt sources:
# each suite gets a private apt state under $CACHE/apt/SUITE (its own
# sources.list, lists and package cache, status /dev/null), used only to
# resolve versions and download packages, which are then extracted with
# dpkg-deb -x under $CACHE.
#
# Kernels (names for --kernel=):
#   6.1   Debian 12's kernel, from the host's own apt sources (bookworm and
#         bookworm-security); headers installed on the host (gcc-12).
#   6.12  bookworm-backports (Debian 13's LTS kernel built with gcc-12):
#         image and headers extracted under $CACHE; module built on the host.
#   sid   the newest kernel of Debian's sid (7.2 today; "newest" and its
#         version number are accepted too); headers need sid's compiler, so the
#         module is built in a debootstrap chroot of sid cached as
#         $CACHE/chroot-sid.tar.gz (unpacked in $CACHE/chroot-sid).
# QEMU: bookworm's qemu-system-x86 (7.2) for 6.1 and sid; QEMU from
# bookworm-backports (10.x), extracted under $CACHE/qemu-VERSION and run
# with -L for its firmware, for 6.12, which QEMU 7.2 cannot run under TCG,
# and for any VM that kexecs into 6.12 (upgrade-chain).
#
# Versions are resolved from the archive once and remembered in
# $CACHE/resolved/NAME; later runs are offline.  --refresh (or removing
# $CACHE/resolved) resolves them again.

DEBIAN_MIRROR=${PKRAMFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
REFRESH=${REFRESH:-0}

# dapt SUITE apt-get|apt-cache ARGS...: apt with the private state of SUITE
dapt() {
	local suite=$1 tool=$2 d=$CACHE/apt/$1
	shift 2
	"$tool" -o Dir::Etc::SourceList="$d/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" \
		-o Dir::State::status=/dev/null -o APT::Architecture=amd64 \
		-o Acquire::Check-Valid-Until=false \
		-o APT::Architectures::=amd64 -o Debug::NoLocking=1 "$@"
}

DAPT_UPDATED=" "
# dapt_update SUITE: apt-get update of the private state, once per run
dapt_update() {
	local suite=$1 d=$CACHE/apt/$1
	case $DAPT_UPDATED in *" $suite "*) return ;; esac
	[ -r "$DEBIAN_KEYRING" ] || die "no $DEBIAN_KEYRING: apt-get install debian-archive-keyring"
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	echo "deb [signed-by=$DEBIAN_KEYRING] $DEBIAN_MIRROR $suite main" >"$d/sources.list"
	log "apt-get update ($suite, private state in $d)"
	dapt "$suite" apt-get -q update >"$d/update.log" 2>&1 ||
		die "Debian archive unreachable: apt-get update of $suite at $DEBIAN_MIRROR failed (see $d/update.log); check the network or set PKRAMFS_DEBIAN_MIRROR"
	grep -qE '^(W|E): ' "$d/update.log" &&
		die "Debian archive unreachable: apt-get update of $suite at $DEBIAN_MIRROR reported errors (see $d/update.log); check the network or set PKRAMFS_DEBIAN_MIRROR"
	DAPT_UPDATED="$DAPT_UPDATED$suite "
}

# dapt_download SUITE PKG[=VERSION]...: .debs into $CACHE/dl (kept there)
dapt_download() {
	local suite=$1
	shift
	mkdir -p "$CACHE/dl"
	dapt_update "$suite"
	(cd "$CACHE/dl" && dapt "$suite" apt-get -q download "$@") >"$CACHE/apt/$suite/download.log" 2>&1 ||
		die "apt-get download $* from $suite failed, see $CACHE/apt/$suite/download.log"
}

# deb_file PKG: the downloaded .deb of PKG in $CACHE/dl (newest if several)
deb_file() {
	local f
	f=$(ls -1 "$CACHE/dl/$(printf %s "$1" | sed 's/+/%2b/g')"_*.deb "$CACHE/dl/$1"_*.deb 2>/dev/null |
		sort -V | tail -n1)
	[ -n "$f" ] || die "no $1 .deb in $CACHE/dl"
	echo "$f"
}

# extract DIR PKG...: dpkg-deb -x each package's .deb into DIR (atomically)
extract() {
	local dir=$1 p
	shift
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	for p in "$@"; do
		dpkg-deb -x "$(deb_file "$p")" "$dir.tmp" || die "dpkg-deb -x $p failed"
	done
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

# resolve NAME: the ABI (and QEMU version) of kernel NAME, from the cache or
# the archive; sets R_SUITE R_ABI R_VERSION
resolve() {
	local name=$1 r=$CACHE/resolved/$1
	case $name in
	6.12) R_SUITE=bookworm-backports ;;
	sid) R_SUITE=sid ;;
	*) die "unknown kernel $name" ;;
	esac
	if [ "$REFRESH" = 1 ] || [ ! -s "$r" ]; then
		dapt_update "$R_SUITE"
		R_ABI=$(dapt "$R_SUITE" apt-cache depends linux-headers-cloud-amd64 2>/dev/null |
			sed -n 's/^ *Depends: linux-headers-\(.*-cloud-amd64\)$/\1/p' | head -n1)
		R_VERSION=$(dapt "$R_SUITE" apt-cache show "linux-headers-$R_ABI" 2>/dev/null |
			sed -n 's/^Version: //p' | head -n1)
		[ -n "$R_ABI" ] && [ -n "$R_VERSION" ] ||
			die "cannot resolve the kernel of $R_SUITE (linux-headers-cloud-amd64) in the Debian archive"
		mkdir -p "$CACHE/resolved"
		printf '%s %s\n' "$R_ABI" "$R_VERSION" >"$r"
	fi
	read -r R_ABI R_VERSION <"$r"
}

# qemu10: QEMU from bookworm-backports, extracted; sets QEMU10 (the command
# line prefix)
qemu10() {
	local r=$CACHE/resolved/qemu-backports ver dir
	if [ "$REFRESH" = 1 ] || [ ! -s "$r" ]; then
		dapt_update bookworm-backports
		ver=$(dapt bookworm-backports apt-cache show qemu-system-x86 2>/dev/null |
			sed -n 's/^Version: //p' | head -n1)
		[ -n "$ver" ] || die "cannot resolve qemu-system-x86 in bookworm-backports"
		mkdir -p "$CACHE/resolved"
		echo "$ver" >"$r"
	fi
	ver=$(cat "$r")
	dir=$CACHE/qemu-${ver#*:}
	if [ ! -x "$dir/usr/bin/qemu-system-x86_64" ]; then
		log "downloading QEMU $ver (bookworm-backports)"
		dapt_download bookworm-backports "qemu-system-x86=$ver" "qemu-system-common=$ver" \
			"qemu-system-data=$ver"
		extract "$dir" qemu-system-x86 qemu-system-common qemu-system-data
	fi
	"$dir/usr/bin/qemu-system-x86_64" --version >/dev/null 2>&1 ||
		die "QEMU of bookworm-backports ($dir) does not run here: $("$dir/usr/bin/qemu-system-x86_64" --version 2>&1 | head -n1)"
	# shellcheck disable=SC2034  # used by tools/vm-test
	QEMU10="$dir/usr/bin/qemu-system-x86_64 -L $dir/usr/share/qemu -L /usr/share/seabios"
}

# fetch_image NAME ABI SUITE: the image (and modules) of a kernel extracted
# into $CACHE/kernel-ABI; sets KROOT VMLINUZ
fetch_image() {
	local name=$1 abi=$2 suite=$3 pkgs
	KROOT=$CACHE/kernel-$abi
	case $name in
	sid) VMLINUZ=$KROOT/usr/lib/modules/$abi/vmlinuz ;;	# merged /usr layout
	*) VMLINUZ=$KROOT/boot/vmlinuz-$abi ;;
	esac
	[ -s "$VMLINUZ" ] && return
	log "downloading the $name kernel $abi ($suite)"
	case $name in
	6.12) pkgs="linux-image-$abi" ;;
	# sid splits the image: linux-binary (vmlinuz) and linux-modules
	sid) pkgs="linux-binary-$abi linux-modules-$abi" ;;
	esac
	# shellcheck disable=SC2086
	dapt_download "$suite" $pkgs
	# shellcheck disable=SC2086
	extract "$KROOT" $pkgs
	[ -s "$VMLINUZ" ] || die "no $VMLINUZ in $pkgs"
}

# fetch_headers_612 ABI: headers extracted into $CACHE/headers-ABI, with the
# flavour Makefile pointed at the extracted -common tree; sets KDIR
fetch_headers_612() {
	local abi=$1 hroot=$CACHE/headers-$1 common kbuild
	common=linux-headers-${abi%-cloud-amd64}-common
	kbuild=linux-kbuild-${abi%-cloud-amd64}
	KDIR=$hroot/usr/src/linux-headers-$abi
	if [ ! -e "$KDIR/.pkramfs-ready" ]; then
		log "downloading the headers of $abi (bookworm-backports)"
		dapt_download bookworm-backports "linux-headers-$abi" "$common" "$kbuild"
		extract "$hroot" "linux-headers-$abi" "$common" "$kbuild"
		# absolute paths of the installed layout -> the extracted one
		grep -rlI --include=Makefile -e '/usr/src/' -e '/usr/lib/linux-kbuild' "$KDIR" |
			xargs -r sed -i -e "s| /usr/src/| $hroot/usr/src/|g" \
				-e "s|\([ =]\)/usr/lib/linux-kbuild|\1$hroot/usr/lib/linux-kbuild|g"
		# scripts/ and tools/ of the headers link to linux-kbuild: relative
		# links today; absolute ones would leave the extracted tree
		find "$hroot/usr/src" -maxdepth 2 -type l -lname '/usr/*' -print0 |
			while IFS= read -r -d '' l; do ln -sfn "$hroot$(readlink "$l")" "$l"; done
		touch "$KDIR/.pkramfs-ready"
	fi
}

# sid_chroot ABI: a debootstrap chroot of sid with the headers of ABI and
# their compiler, unpacked in $CACHE/chroot-sid from the cached tarball
# $CACHE/chroot-sid.tar.gz (made once); sets CHROOT
sid_chroot() {
	local abi=$1 tar=$CACHE/chroot-sid.tar.gz
	CHROOT=$CACHE/chroot-sid
	[ -e "$CHROOT/usr/src/linux-headers-$abi/.pkramfs-ready" ] && return
	command -v debootstrap >/dev/null || die "debootstrap missing: run tools/install-deps (apt-get install debootstrap)"
	if [ ! -s "$tar" ]; then
		log "debootstrap of sid (once; cached as $tar)"
		rm -rf "$CHROOT.tmp"
		debootstrap --variant=minbase --include=make,gcc,libc6-dev,ca-certificates \
			--keyring="$DEBIAN_KEYRING" sid "$CHROOT.tmp" "$DEBIAN_MIRROR" \
			>"$CACHE/debootstrap.log" 2>&1 ||
			die "debootstrap of sid from $DEBIAN_MIRROR failed (archive unreachable?), see $CACHE/debootstrap.log"
		rm -rf "$CHROOT.tmp"/var/cache/apt/archives/*.deb
		tar -C "$CHROOT.tmp" -czf "$tar.tmp" . && mv "$tar.tmp" "$tar"
		rm -rf "$CHROOT.tmp"
	fi
	if [ ! -d "$CHROOT/usr" ]; then
		rm -rf "$CHROOT"
		mkdir -p "$CHROOT"
		tar -C "$CHROOT" -xzf "$tar" || die "cannot unpack $tar"
	fi
	log "installing linux-headers-$abi in the sid chroot"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR sid main" \
		>"$CHROOT/etc/apt/sources.list"
	cp /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
	# Check-Valid-Until: a mirror (or a snapshot) a few weeks behind sid
	# still serves the headers we resolved; signatures are checked
	{ chroot "$CHROOT" apt-get -q -o Acquire::Check-Valid-Until=false update &&
		DEBIAN_FRONTEND=noninteractive chroot "$CHROOT" apt-get -q install -y \
			--no-install-recommends "linux-headers-$abi"; } >"$CACHE/chroot-sid.log" 2>&1 ||
		die "installing linux-headers-$abi in the sid chroot failed (archive unreachable?), see $CACHE/chroot-sid.log"
	chroot "$CHROOT" apt-get clean
	touch "$CHROOT/usr/src/linux-headers-$abi/.pkramfs-ready"
}

# kernel_canon NAME: 6.1, 6.12 or sid for a --kernel= word
kernel_canon() {
	case $1 in
	6.1|6.12|sid) echo "$1" ;;
	newest) echo sid ;;
	*)
		# a version number: the sid kernel's (resolved), e.g. 7.2
		local abi
		abi=$(cut -d' ' -f1 "$CACHE/resolved/sid" 2>/dev/null || true)
		if [ -z "$abi" ]; then
			(resolve sid >/dev/null) || return 1
			abi=$(cut -d' ' -f1 "$CACHE/resolved/sid")
		fi
		case $abi in
		"$1".*|"$1"+*|"$1"-*) echo sid ;;
		*) return 1 ;;
		esac
		;;
	esac
}
