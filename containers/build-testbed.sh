#!/usr/bin/env bash
# Build (or reuse) the Molecule testbed image without any registry.
#   1. base:    debootstrap Debian bookworm with packages.txt, podman import,
#               tagged by a hash of the package list and this script.
#   2. testbed: the base plus the simulator files, tagged by a hash of the
#               base tag and those files.
# Prints the final image name (localhost/bemore-testbed:HASH) on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
suite=bookworm

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-testbed: '$tool' is missing; install it with: apt-get install -y podman runc debootstrap" >&2; exit 2; }
done

hash_of() { cat "$@" | sha256sum | cut -c1-12; }
packages=$(grep -v '^\s*#' "$here/testbed/packages.txt" | grep -v '^\s*$' | paste -sd, -)
apt_packages=$(grep -v '^\s*#' "$here/testbed/packages-apt.txt" | grep -v '^\s*$' | paste -sd' ' -)
base_tag=$( { echo "$suite $packages / $apt_packages"; sed -n '/^# BASE-START/,/^# BASE-END/p' "$0"; } | sha256sum | cut -c1-12)
base="localhost/bemore-testbed-base:$base_tag"

# BASE-START
if ! podman image exists "$base"; then
  echo "build-testbed: building $base (debootstrap $suite, about a minute)" >&2
  work=$(mktemp -d /var/tmp/bemore-rootfs.XXXXXX)
  # debootstrap mounts /proc inside the root; never let rm walk into a mount.
  trap 'umount -R "$work/rootfs/proc" 2>/dev/null; rm -rf --one-file-system "$work"' EXIT
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  if [ -n "$apt_packages" ]; then
    # shellcheck disable=SC2086  # a list of package names
    { chroot "$work/rootfs" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive chroot "$work/rootfs" apt-get install -y -qq --no-install-recommends $apt_packages; } \
      >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; exit 1; }
  fi
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' - "$base" >/dev/null
fi
# BASE-END

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# The simulator stands alone (it imports nothing from module_utils/).
files=(Containerfile bemore.service bemore-seed.service bemore-npm-registry.service ssh-hostkeys.service
       sshd-bemore.conf bemore_sim.py sandboxctl.py npm_registry.py npm_fixture.json)
cp "$here/testbed/Containerfile" "$here/testbed/"*.service "$here/testbed/sshd-bemore.conf" \
   "$repo/sandbox/bemore_sim.py" "$repo/sandbox/sandboxctl.py" "$repo/sandbox/npm_registry.py" \
   "$repo/sandbox/npm_fixture.json" "$ctx/"
tag=$( { echo "$base"; cd "$ctx" && cat "${files[@]}"; } | sha256sum | cut -c1-12)
image="localhost/bemore-testbed:$tag"
if ! podman image exists "$image"; then
  echo "build-testbed: building $image" >&2
  podman build --pull=never --build-arg "BASE_IMAGE=$base" -t "$image" "$ctx" >&2
fi
echo "$image"
