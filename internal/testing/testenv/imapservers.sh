#!/bin/bash
# Fetches the Cyrus and Courier IMAP servers the integration tests run beside Dovecot, without
# installing them (their Debian packages conflict with dovecot-imapd): the packages and the
# shared libraries they need that are not installed are downloaded into DEST/debs and
# extracted into DEST/root. gamin is Courier's file-watching server: without it every Courier
# session waits for it a second at login and again at SELECT. Idempotent: a complete tree is
# left alone.
#
# Usage: imapservers.sh DEST
set -euo pipefail

dest=${1:?usage: imapservers.sh DEST}
servers="cyrus-imapd cyrus-common sasl2-bin courier-imap courier-base courier-authlib courier-authlib-userdb gamin"
stamp="$dest/root/.complete"

if [[ -f $stamp && "$(cat "$stamp")" == "$servers" ]]; then
	exit 0
fi
for tool in apt-get apt-cache dpkg dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		echo "imapservers: $tool not found: Cyrus and Courier are fetched from Debian packages" >&2
		exit 1
	fi
done

installed() { dpkg -s "$1" >/dev/null 2>&1; }

# depends PKG prints the packages PKG needs that are neither installed nor already chosen:
# libraries only (the daemons' other dependencies, an MTA, debconf, perl modules, are not
# needed to run them from the extracted tree); of alternatives, the first real package.
depends() {
	apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
		--no-enhances "$1" 2>/dev/null | awk '
		/^ *\|?(Pre)?Depends:/ {
			alt = ($1 ~ /^\|/); name = $2
			if (name !~ /^</) group = group " " name
			if (!alt) { print group; group = "" }
		}'
}

resolve() {
	local -A seen=()
	local queue=("$@") out=() p group d chosen
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		[[ -n ${seen[$p]:-} ]] && continue
		seen[$p]=1
		out+=("$p")
		while read -r group; do
			chosen=""
			for d in $group; do
				d=${d%:any}
				if installed "$d"; then chosen=""; break; fi
				if [[ -z $chosen && $d == lib* && $d != *-perl ]]; then chosen=$d; fi
			done
			[[ -n $chosen ]] && queue+=("$chosen")
		done < <(depends "$p")
	done
	printf '%s\n' "${out[@]}"
}

# shellcheck disable=SC2086
pkgs=$(resolve $servers)
if [[ -z $pkgs ]]; then
	echo "imapservers: cannot resolve the packages (apt-cache knows none of: $servers)" >&2
	exit 1
fi

mkdir -p "$dest/debs"
cd "$dest/debs"
want=()
for p in $pkgs; do
	compgen -G "${p}_*.deb" >/dev/null || want+=("$p")
done
if ((${#want[@]})); then
	echo "imapservers: downloading ${want[*]}"
	# The download runs as the caller (no _apt sandbox: DEST may not be writable by _apt).
	if ! apt-get download -q -o APT::Sandbox::User="$(id -un)" "${want[@]}" >/dev/null 2>download.err; then
		if [[ $(id -u) != 0 ]]; then
			cat download.err >&2
			echo "imapservers: download failed; run 'make tools' as root to refresh the package lists" >&2
			exit 1
		fi
		apt-get update -qq
		apt-get download -q -o APT::Sandbox::User=root "${want[@]}" >/dev/null
	fi
	rm -f download.err
fi

rm -rf "$dest/root.tmp"
mkdir -p "$dest/root.tmp"
for p in $pkgs; do
	for deb in "${p}"_*.deb; do
		dpkg-deb -x "$deb" "$dest/root.tmp"
	done
done

# Every server binary must find its libraries in the tree or on the system.
libdirs=$(find "$dest/root.tmp" -name '*.so*' -printf '%h\n' | sort -u | tr '\n' ':')
for bin in usr/lib/cyrus/bin/master usr/lib/cyrus/bin/imapd usr/sbin/saslpasswd2 usr/bin/imapd \
	usr/sbin/couriertcpd usr/lib/courier/courier/imaplogin usr/lib/courier/courier-authlib/authdaemond \
	usr/lib/courier/courier-authlib/makedatprog; do
	if [[ ! -x $dest/root.tmp/$bin ]]; then
		echo "imapservers: $bin missing from the extracted packages" >&2
		exit 1
	fi
	if missing=$(LD_LIBRARY_PATH=$libdirs ldd "$dest/root.tmp/$bin" | grep 'not found'); then
		echo "imapservers: $bin lacks libraries:" >&2
		echo "$missing" >&2
		exit 1
	fi
done

rm -rf "$dest/root"
mv "$dest/root.tmp" "$dest/root"
echo "$servers" >"$stamp"
echo "imapservers: Cyrus and Courier extracted into $dest/root"
