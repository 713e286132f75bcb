#!/usr/bin/env bash
# tests/packages.sh: makes a release with cross/release (every target in
# cross/targets, signed with a throwaway key) and checks what an operator
# gets: tarballs, sums and signature, binary sizes against
# cross/size-report.txt, the .deb (installed, run, removed and purged on this
# machine when it is a Debian run as root), the OpenWrt .ipk (unpacked; its
# init script run with stand-ins for procd), the Alpine APKBUILD, the OpenWrt
# feed Makefile and the ansible role (ansible-core from PyPI in a venv).
# Prints "N passed, N failed"; exits 1 if any check failed.
#
#   HEFT_PKG_VERSION   the version to release as (default: Cargo.toml's +test)
#   HEFT_PKG_NO_BUILD  set: package the binaries cross/build made last
#   HEFT_PKG_SKIP      space-separated sections to skip: deb ipk apk ansible
#   HEFT_ANSIBLE_VENV  where ansible-core is installed (~/.cache/heft-ansible)
set -uo pipefail
export LC_ALL=C
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
pass=0 failed=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
# check DESCRIPTION COMMAND...: one check.
check() {
    local d=$1
    shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
skip() { case " ${HEFT_PKG_SKIP:-} " in *" $1 "*) echo "skip - $1 (HEFT_PKG_SKIP)"; return 0 ;; esac; return 1; }
finish() {
    echo "$pass passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

tmp=$(mktemp -d /tmp/heft-packages.XXXXXX)
# The agents the tests start as other users read files in here.
chmod 0755 "$tmp"
agent_pids=()
cleanup() {
    for p in "${agent_pids[@]}"; do
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = heft ]; then kill -KILL "$p" 2>/dev/null; fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# gone PID: the process has exited (a zombie nobody reaped has, too).
gone() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    case ${st##*) } in Z*) return 0 ;; esac
    return 1
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_up PORT BIN: waits up to 5 s for `heft get` to print a line.
wait_up() {
    local i
    for i in $(seq 50); do
        "$2" get --port "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

version=${HEFT_PKG_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)+test}
dist=$repo/dist/$version
targets=()
shorts=()
while read -r t s _; do
    case $t in '' | '#'*) continue ;; esac
    targets+=("$t")
    shorts+=("$s")
done <cross/targets

# ---------------------------------------------------------------------------
# The release.
ssh-keygen -q -t ed25519 -N '' -C releases@heft -f "$tmp/key"
echo "releases@heft namespaces=\"heft-release\" $(cat "$tmp/key.pub")" >"$tmp/allowed_signers"
release_opts=()
[ -z "${HEFT_PKG_NO_BUILD:-}" ] || release_opts=(--no-build)
if ! cross/release "${release_opts[@]}" "$version" "$tmp/key" >"$tmp/release.log" 2>&1; then
    cat "$tmp/release.log"
    bad "cross/release $version"
    finish
fi
ok "cross/release $version"

size_of() {
    awk -F'|' -v t="$1" '{ gsub(/ /, "", $2); gsub(/ /, "", $3) } $2 == t { print $3 }' cross/size-report.txt
}
for i in "${!targets[@]}"; do
    t=${targets[$i]} s=${shorts[$i]}
    tb=$dist/heft-$version-$s.tar.gz
    check "$s: tarball" test -f "$tb"
    [ -f "$tb" ] || continue
    listing=$(tar -tvzf "$tb")
    names=$(tar -tzf "$tb")
    want="heft-$version-$s/heft heft-$version-$s/README.md heft-$version-$s/LICENSE-MIT heft-$version-$s/LICENSE-APACHE heft-$version-$s/contrib/systemd/heft.service heft-$version-$s/contrib/state.json"
    missing=
    for f in $want; do
        grep -Fqx "$f" <<<"$names" || missing="$missing $f"
    done
    check "$s: tarball holds heft, README, licenses, contrib/${missing:+ (missing:$missing)}" test -z "$missing"
    check "$s: one top folder" test "$(cut -d/ -f1 <<<"$names" | sort -u)" = "heft-$version-$s"
    check "$s: owner 0/0 throughout" test -z "$(echo "$listing" | awk '$2 != "0/0"')"
    check "$s: names sorted" test "$names" = "$(LC_ALL=C sort <<<"$names")"
    sde=$(git log -1 --format=%ct)
    mt=$(tar -tvzf "$tb" --full-time | awk '{ print $4 " " $5 }' | sort -u)
    check "$s: every mtime is the last commit's" test "$mt" = "$(date -u -d "@$sde" '+%Y-%m-%d %H:%M:%S')"
    check "$s: gzip header has no name or time" test "$(od -An -tu4 -j4 -N4 "$tb" | tr -d ' ')" = 0
    tar -xOzf "$tb" "heft-$version-$s/heft" >"$tmp/bin-$s"
    bytes=$(wc -c <"$tmp/bin-$s")
    want=$(size_of "$t")
    check "$s: binary is $bytes bytes, cross/size-report.txt says ${want:-nothing}" test "$bytes" = "$want"
    check "$s: binary is a static ELF executable" test "$(od -An -tx1 -N4 "$tmp/bin-$s" | tr -d ' ')" = 7f454c46 \
        -a -z "$(readelf -lW "$tmp/bin-$s" 2>/dev/null | grep -E 'INTERP|DYNAMIC')"
done
check "SHA256SUMS and SHA256SUMS.sig" test -f "$dist/SHA256SUMS" -a -f "$dist/SHA256SUMS.sig"
check "cross/verify accepts the release" cross/verify "$dist" "$tmp/allowed_signers" >"$tmp/verify.log" 2>&1
(cd "$dist" && ssh-keygen -Y verify -f "$tmp/allowed_signers" -I releases@heft -n heft-release \
    -s SHA256SUMS.sig <SHA256SUMS >/dev/null 2>&1 && sha256sum -c SHA256SUMS >/dev/null 2>&1)
check "the documented ssh-keygen -Y verify && sha256sum -c" test $? = 0
n=$(wc -l <"$dist/SHA256SUMS")
check "SHA256SUMS lists every file ($n)" test "$n" = "$(cd "$dist" && find . -type f ! -name 'SHA256SUMS*' | wc -l)"
cp -r "$dist" "$tmp/tampered"
# Change the first digit of the first sum, whatever it is.
sed -i '1s/^0/X/; 1s/^[1-9a-f]/0/; 1s/^X/1/' "$tmp/tampered/SHA256SUMS"
! cmp -s "$dist/SHA256SUMS" "$tmp/tampered/SHA256SUMS" || bad "the tampered SHA256SUMS is the same as the release's"
! cross/verify "$tmp/tampered" "$tmp/allowed_signers" >/dev/null 2>&1
check "cross/verify refuses a changed SHA256SUMS" test $? = 0
cp "$dist/SHA256SUMS" "$tmp/sums.1"
if cross/release --no-build "$version" >/dev/null 2>&1; then
    check "a second release of the same binaries is byte for byte the same" cmp -s "$tmp/sums.1" "$dist/SHA256SUMS"
    cp "$tmp/sums.1" "$dist/SHA256SUMS"
    (cd "$dist" && ssh-keygen -Y sign -q -n heft-release -f "$tmp/key" SHA256SUMS)
else
    bad "cross/release --no-build (second run)"
fi

# ---------------------------------------------------------------------------
# .deb
deb_arch_of() {
    case $1 in
        x86_64-*) echo amd64 ;; aarch64-*) echo arm64 ;;
        arm-unknown-linux-musleabihf) echo armhf ;; mipsel-*) echo mipsel ;;
    esac
}
if ! skip deb; then
    for i in "${!targets[@]}"; do
        a=$(deb_arch_of "${targets[$i]}")
        [ -n "$a" ] || continue
        d=$dist/heft_${version}_$a.deb
        check "deb $a: built" test -f "$d"
        [ -f "$d" ] || continue
        check "deb $a: Architecture" test "$(dpkg-deb -f "$d" Architecture)" = "$a"
        check "deb $a: Version" test "$(dpkg-deb -f "$d" Version)" = "$version"
        files=$(dpkg-deb -c "$d" | awk '{ print $6 }' | sed 's|^\./|/|')
        for f in /usr/sbin/heft /etc/init.d/heft /etc/default/heft /etc/heft/state.json \
            /usr/lib/systemd/system/heft.service /usr/share/doc/heft/copyright; do
            echo "$files" | grep -qx "$f" || bad "deb $a: $f missing"
        done
        check "deb $a: owned by root" test -z "$(dpkg-deb -c "$d" | awk '$2 != "root/root"')"
        dpkg-deb -e "$d" "$tmp/deb-$a"
        check "deb $a: conffiles" test "$(cat "$tmp/deb-$a/conffiles")" = "$(printf '/etc/default/heft\n/etc/heft/state.json\n/etc/init.d/heft')"
        for s in postinst prerm postrm; do
            check "deb $a: $s is sh" sh -n "$tmp/deb-$a/$s"
        done
        bin=$(dpkg-deb --fsys-tarfile "$d" | tar -xOf - ./usr/sbin/heft | wc -c)
        tb=$dist/heft-$version-${shorts[$i]}.tar.gz
        check "deb $a: the release's binary" test "$bin" = "$(tar -xOzf "$tb" "heft-$version-${shorts[$i]}/heft" | wc -c)"
    done
    check "deb armhf comes from the armv6 binary" test "$(dpkg-deb --fsys-tarfile "$dist/heft_${version}_armhf.deb" | tar -xOf - ./usr/sbin/heft | sha256sum)" = \
        "$(tar -xOzf "$dist/heft-$version-armv6.tar.gz" "heft-$version-armv6/heft" | sha256sum)"

    d=$dist/heft_${version}_amd64.deb
    if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null || [ "$(dpkg --print-architecture)" != amd64 ]; then
        echo "skip - deb install: needs root on Debian amd64"
    elif dpkg -s heft >/dev/null 2>&1; then
        echo "skip - deb install: a heft package is already installed here"
    elif getent passwd heft >/dev/null; then
        echo "skip - deb install: a user heft already exists here"
    else
        check "dpkg -i" dpkg -i "$d" >"$tmp/dpkg-i.log" 2>&1
        # postinst may have started heft with the init script (no policy-rc.d here).
        /etc/init.d/heft stop >/dev/null 2>&1
        check "deb: user heft made" getent passwd heft >/dev/null
        check "deb: /etc/heft is heft's" test "$(stat -c %U /etc/heft 2>/dev/null)" = heft
        check "deb: /usr/sbin/heft" test -x /usr/sbin/heft
        port=$(free_port)
        mkdir -p "$tmp/deb-run"
        chown heft "$tmp/deb-run"
        cp /etc/heft/state.json "$tmp/deb-run/state.json"
        /usr/sbin/heft --addr 127.0.0.1 --port "$port" --state-file "$tmp/deb-run/state.json" \
            --user heft </dev/null >"$tmp/deb-run.log" 2>&1 &
        agent_pids+=($!)
        wait_up "$port" /usr/sbin/heft >/dev/null
        out=$(/usr/sbin/heft get --port "$port" 2>&1)
        check "deb: heft get prints an up line ($out)" test "${out%% *}" = up
        kill -TERM "${agent_pids[-1]}"
        wait "${agent_pids[-1]}" 2>/dev/null
        check "dpkg -r" dpkg -r heft >"$tmp/dpkg-r.log" 2>&1
        check "deb: /usr/sbin/heft gone after -r" test ! -e /usr/sbin/heft
        check "deb: conffile kept after -r" test -f /etc/heft/state.json
        check "dpkg -P" dpkg -P heft >"$tmp/dpkg-p.log" 2>&1
        ! dpkg -L heft >/dev/null 2>&1
        check "deb: dpkg -L knows no heft after -P" test $? = 0
        check "deb: conffiles gone after -P" test ! -e /etc/heft/state.json -a ! -e /etc/default/heft -a ! -e /etc/init.d/heft
        check "deb: /etc/heft gone after -P" test ! -e /etc/heft
        ! getent passwd heft >/dev/null
        check "deb: user heft gone after -P" test $? = 0
    fi
fi

# ---------------------------------------------------------------------------
# OpenWrt .ipk
ipk_archs_of() {
    case $1 in
        x86_64-*) echo x86_64 ;; aarch64-*) echo aarch64_generic aarch64_cortex-a53 ;;
        armv7-*) echo arm_cortex-a7_neon-vfpv4 ;; arm-unknown-linux-musleabihf) echo arm_arm1176jzf-s_vfp ;;
        mipsel-*) echo mipsel_24kc ;; mips-*) echo mips_24kc ;;
    esac
}
if ! skip ipk; then
    for i in "${!targets[@]}"; do
        for a in $(ipk_archs_of "${targets[$i]}"); do
            p=$dist/heft_${version}-r1_$a.ipk
            check "ipk $a: built" test -f "$p"
            [ -f "$p" ] || continue
            x=$tmp/ipk-$a
            mkdir -p "$x/ctl" "$x/data"
            check "ipk $a: a tar.gz of debian-binary, data.tar.gz, control.tar.gz (opkg's, as ipkg-build makes)" \
                test "$(tar -tzf "$p" | tr '\n' ' ')" = "./debian-binary ./data.tar.gz ./control.tar.gz "
            tar -C "$x" -xzf "$p"
            check "ipk $a: debian-binary 2.0" test "$(cat "$x/debian-binary")" = 2.0
            tar -C "$x/ctl" -xzf "$x/control.tar.gz"
            tar -C "$x/data" -xzf "$x/data.tar.gz"
            field() { sed -n "s/^$1: *//p" "$x/ctl/control"; }
            check "ipk $a: Package heft" test "$(field Package)" = heft
            check "ipk $a: Version" test "$(field Version)" = "$version-r1"
            check "ipk $a: Architecture" test "$(field Architecture)" = "$a"
            check "ipk $a: Installed-Size" test "$(field Installed-Size)" = "$(gzip -dc "$x/data.tar.gz" | wc -c)"
            for f in Maintainer License Section Description SourceDateEpoch; do
                [ -n "$(field $f)" ] || bad "ipk $a: no $f"
            done
            want="./etc/config/heft ./etc/heft/state.json ./etc/init.d/heft ./etc/uci-defaults/90-heft ./lib/upgrade/keep.d/heft ./usr/sbin/heft"
            got=$(tar -tzf "$x/data.tar.gz" | grep -v '/$' | sort | tr '\n' ' ')
            check "ipk $a: files ($got)" test "$got" = "$want "
            lists=$(printf '/etc/config/heft\n/etc/heft/state.json')
            check "ipk $a: conffiles" test "$(cat "$x/ctl/conffiles")" = "$lists"
            check "ipk $a: keep.d/heft (kept over sysupgrade)" test "$(cat "$x/data/lib/upgrade/keep.d/heft")" = "$lists"
            check "ipk $a: postinst, prerm" sh -n "$x/ctl/postinst" -a -x "$x/ctl/prerm"
        done
    done
    # The packaged procd script, run under busybox sh with stand-ins for
    # procd's helpers that start the instance's command and record its pid.
    x=$tmp/ipk-x86_64
    if [ -d "$x/data" ] && command -v busybox >/dev/null; then
        port=$(free_port)
        mkdir -p "$x/run"
        sed -e "s|option address .*|option address '127.0.0.1'|" -e "s|option port .*|option port '$port'|" \
            -e "s|option state_file .*|option state_file '$x/run/state.json'|" \
            -e "s|option pid_file .*|option pid_file '$x/run/heft.pid'|" \
            -e "/option user/d" -e "/option group/d" "$x/data/etc/config/heft" >"$x/run/heft"
        cp "$x/data/etc/heft/state.json" "$x/run/state.json"
        cat >"$x/run/procd.sh" <<'EOF'
config() { _sec=$2; _SECTIONS="$_SECTIONS $2"; eval "CONFIG_${2}_TYPE=\$1"; }
option() { eval "CONFIG_${_sec}_$1=\$2"; }
list() {
    eval "_n=\${CONFIG_${_sec}_$1_LENGTH:-0}"; _n=$((_n + 1))
    eval "CONFIG_${_sec}_$1_ITEM$_n=\$2; CONFIG_${_sec}_$1_LENGTH=$_n"
}
config_load() { _SECTIONS=; . "$UCI_CONFIG_DIR/$1"; }
config_get() { eval "_v=\${CONFIG_${2}_${3}:-}"; [ -n "$_v" ] || _v=$4; eval "$1=\$_v"; }
config_get_bool() { config_get _b "$2" "$3" "$4"; case $_b in 1|on|true|yes|enabled) _b=1 ;; *) _b=0 ;; esac; eval "$1=\$_b"; }
config_list_foreach() {
    eval "_ln=\${CONFIG_${1}_${2}_LENGTH:-0}"; _li=1
    while [ "$_li" -le "$_ln" ]; do eval "_lv=\$CONFIG_${1}_${2}_ITEM$_li"; "$3" "$_lv"; _li=$((_li + 1)); done
}
config_foreach() { for _fs in $_SECTIONS; do eval "_fty=\$CONFIG_${_fs}_TYPE"; [ "$_fty" = "$2" ] && "$1" "$_fs"; done; }
procd_open_instance() { _cmd=; }
procd_set_param() { _p=$1; shift; [ "$_p" = command ] && _cmd="$*"; [ "$_p" = stderr ] && echo "stderr $*"; }
procd_append_param() { _p=$1; shift; [ "$_p" = command ] && _cmd="$_cmd $*"; }
procd_close_instance() { $_cmd </dev/null >"$RUN/heft.out" 2>&1 & echo "pid $!"; }
procd_add_reload_trigger() { :; }
. "$SCRIPT"
PROG="$BIN"
start_service
EOF
        out=$(UCI_CONFIG_DIR=$x/run RUN=$x/run SCRIPT=$x/data/etc/init.d/heft BIN=$x/data/usr/sbin/heft \
            busybox sh "$x/run/procd.sh" 2>&1)
        pid=$(echo "$out" | sed -n 's/^pid //p')
        [ -z "$pid" ] || agent_pids+=("$pid")
        check "ipk: procd script starts heft (pid $pid)" test -n "$pid"
        check "ipk: procd captures stderr (logd)" test -n "$(echo "$out" | grep '^stderr 1')"
        wait_up "$port" "$x/data/usr/sbin/heft" >/dev/null
        got=$("$x/data/usr/sbin/heft" get --port "$port" 2>&1)
        check "ipk: the packaged config serves ($got)" test "${got%% *}" = up
        [ -z "$pid" ] || kill -TERM "$pid"
        sleep 0.3
        check "ipk: heft stopped by SIGTERM (procd's stop)" gone "$pid"
    fi
    check "OpenWrt Makefile names files that exist" bash -c '
        for f in $(grep -o "PKG_BUILD_DIR)/contrib/[^ ]*" contrib/openwrt/Makefile | sed "s|PKG_BUILD_DIR)/||"); do
            test -f "$f" || { echo "missing $f"; exit 1; }
        done'
    for a in x86_64 aarch64_generic aarch64_cortex-a53 arm_cortex-a7_neon-vfpv4 arm_arm1176jzf-s_vfp mipsel_24kc mips_24kc; do
        grep -q "${a%%_*}" contrib/openwrt/Makefile || bad "Makefile: nothing for $a"
    done
fi

# ---------------------------------------------------------------------------
# Alpine APKBUILD
if ! skip apk; then
    apk=$dist/alpine/APKBUILD
    check "APKBUILD (contrib) parses" sh -n contrib/alpine/APKBUILD
    check "APKBUILD (release) parses" sh -n "$apk"
    check "APKBUILD: openrc subpackage" grep -Fqx 'subpackages="$pkgname-openrc"' "$apk"
    check "APKBUILD: install script exists" test -f "$dist/alpine/heft.pre-install" -a -f contrib/alpine/heft.pre-install
    sums=$(sed -n '/^sha512sums="/,/^"/p' "$apk" | grep -c '  heft-')
    check "APKBUILD: one sum per source ($sums)" test "$sums" = "$(sed -n 's/^_targets="\(.*\)"$/\1/p' "$apk" | wc -w)"
    while read -r sum f; do
        check "APKBUILD: sha512 of $f" test "$sum" = "$(sha512sum <"$dist/$f" | cut -d' ' -f1)"
    done < <(sed -n '/^sha512sums="/,/^"/p' "$apk" | grep '  heft-')
    check "APKBUILD: pkgver" grep -qx "pkgver=$version" "$apk"
    tb=$dist/heft-$version-x86_64.tar.gz
    for f in $(grep -o '"\$_d"/[A-Za-z0-9_./-]*' "$apk" | sed 's|"\$_d"/||' | sort -u); do
        case $f in heft.confd) continue ;; esac
        check "APKBUILD: $f is in the tarball" grep -Fqx "heft-$version-x86_64/$f" <<<"$(tar -tzf "$tb")"
    done
fi

# ---------------------------------------------------------------------------
# ansible role
if ! skip ansible; then
    venv=${HEFT_ANSIBLE_VENV:-$HOME/.cache/heft-ansible}
    if [ ! -x "$venv/bin/ansible-playbook" ]; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check ansible-core >"$tmp/pip.log" 2>&1 ||
            { cat "$tmp/pip.log"; bad "pip install ansible-core"; }
    fi
fi
if ! skip ansible && [ -x "$venv/bin/ansible-playbook" ]; then
    root=$tmp/ansible-root
    mkdir -p "$root"
    port=$(free_port)
    s=$(printf '%s\n' "${shorts[@]}" | grep -x x86_64)
    tb=$dist/heft-$version-x86_64.tar.gz
    sha=$(sha256sum <"$tb" | cut -d' ' -f1)
    # The role validates each state file it writes with the release's `heft check`.
    bin=$tmp/check-bin
    tar -xOzf "$tb" "heft-$version-x86_64/heft" >"$bin" && chmod +x "$bin"
    check "heft check passes contrib/state.json" "$bin" check --state-file contrib/state.json
    user=hefttest
    cat >"$tmp/play.yml" <<EOF
- hosts: localhost
  connection: local
  gather_facts: true
  roles:
    - role: heft
      vars:
        heft_version: "$version"
        heft_target: x86_64
        heft_tarball: "$tb"
        heft_sha256: "$sha"
        heft_root: "$root"
        heft_addr: 127.0.0.1
        heft_port: $port
        heft_allow: [127.0.0.1/32]
        heft_user: $user
        heft_group: $user
EOF
    export ANSIBLE_ROLES_PATH=$repo/contrib/ansible/roles ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 \
        ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python3"
    pb() { LC_ALL=C.UTF-8 LANG=C.UTF-8 "$venv/bin/ansible-playbook" -i localhost, "$tmp/play.yml" "$@"; }
    had_user=$(getent passwd $user >/dev/null && echo 1)
    pb -e heft_init=sysv >"$tmp/ansible-1.log" 2>&1
    code=$?
    check "ansible sysv: first run" test $code = 0
    [ $code = 0 ] || tail -n 30 "$tmp/ansible-1.log"
    pid=$(cat "$root/run/heft.pid" 2>/dev/null)
    [ -z "$pid" ] || agent_pids+=("$pid")
    spid=$(cat "$root/run/heft.pid.supervisor" 2>/dev/null)
    got=$("$root/usr/sbin/heft" get --port "$port" 2>&1)
    check "ansible sysv: heft answers ($got)" test "${got%% *}" = up
    check "ansible sysv: runs as $user" test "$(stat -c %U "/proc/$pid" 2>/dev/null)" = $user
    check "ansible sysv: the state dir is $user's" test "$(stat -c %U "$root/etc/heft")" = $user
    pb -e heft_init=sysv >"$tmp/ansible-2.log" 2>&1
    code=$?
    check "ansible sysv: second run" test $code = 0
    [ $code = 0 ] || tail -n 30 "$tmp/ansible-2.log"
    check "ansible sysv: second run changed=0" grep -q 'localhost *: ok=[0-9]* *changed=0 ' "$tmp/ansible-2.log"
    grep -q 'changed=0 ' "$tmp/ansible-2.log" || grep -E '^changed:' "$tmp/ansible-2.log"
    # A bad state file is refused by `heft check` (validate:) and not written.
    before=$(cat "$root/etc/heft/state.json")
    pb -e heft_init=sysv -e heft_state_force=true -e '{"heft_state": {"status": "UP", "weight": 300}}' \
        >"$tmp/ansible-3.log" 2>&1
    code=$?
    check "ansible: a bad state file fails the run" test $code != 0
    check "ansible: heft check said why" grep -q 'weight: expected a whole number 0-255' "$tmp/ansible-3.log"
    check "ansible: the state file is unchanged" test "$(cat "$root/etc/heft/state.json")" = "$before"
    for init in systemd openrc; do
        r2=$tmp/ansible-$init
        mkdir -p "$r2"
        pb --check -e heft_init=$init -e heft_root="$r2" >"$tmp/ansible-$init.log" 2>&1
        code=$?
        check "ansible $init: --check run" test $code = 0
        [ $code = 0 ] || tail -n 30 "$tmp/ansible-$init.log"
    done
    # The agent, and the loop supervising it, by pid.
    [ -z "$spid" ] || { [ -d "/proc/$spid" ] && kill -TERM "$spid"; }
    [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null
    sleep 0.3
    check "ansible sysv: agent stopped" gone "$pid"
    if [ -z "$had_user" ]; then
        userdel "$user" >/dev/null 2>&1
        groupdel "$user" >/dev/null 2>&1
    fi
fi

# Shell files of the packages.
for f in contrib/debian/postinst contrib/debian/prerm contrib/debian/postrm \
    contrib/openwrt/heft.uci-defaults contrib/alpine/heft.pre-install cross/verify; do
    check "$f: sh -n" sh -n "$f"
    if command -v busybox >/dev/null; then check "$f: busybox ash -n" busybox ash -n "$f"; fi
done

finish
