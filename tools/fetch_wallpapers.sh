#!/usr/bin/env bash
# Fetch the real photographs among Debian's desktop wallpapers into a folder of photos for
# `camera_motion` / `moving_layers` (`images=data/wallpapers`). Optional data: lightvid never needs it.
#
#   tools/fetch_wallpapers.sh [TARGET]      (default TARGET: data/wallpapers; data/ is git-ignored)
#
# Downloads the .deb packages with `apt-get download` (no root, nothing installed) into a temporary
# folder, unpacks them with `dpkg-deb -x` and copies the photographs only: the illustrations,
# renders and abstract art in the same packages are left out (gnome-backgrounds is all
# illustrations and is not fetched). Each package's copyright file is copied next to the photos and
# LICENSES.md names, per photo, its package, its copyright file and (Plasma) its author and license.
set -euo pipefail

target=${1:-data/wallpapers}

# mate-backgrounds: every photo is under nature/ (abstract/ and desktop/ are art). GPL-2+.
MATE_DIR=usr/share/backgrounds/mate/nature
# plasma-workspace-wallpapers: the wallpapers that are photographs (checked by eye; Altai, Autumn,
# Canopee, Volna and the others are drawings or renders). Each is a folder with one image per size.
PLASMA_PHOTOS=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path
  summer_1am)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch PACKAGE: download and unpack into $work/root; prints the package version
  local package=$1
  if ! (cd "$work" && apt-get download "$package" >"$work/apt.log" 2>&1); then
    echo "apt-get download $package failed (no network or no Debian sources?):" >&2
    tail -n 3 "$work/apt.log" >&2
    exit 1
  fi
  local deb
  deb=$(ls "$work/${package}"_*.deb)
  dpkg-deb -x "$deb" "$work/root"
  dpkg-deb -f "$deb" Version
}

largest_image() {  # largest_image FOLDER: the landscape image of most pixels among FOLDER/WxH.{jpg,png}
  local file stem w h best="" best_area=0
  for file in "$1"/*.jpg "$1"/*.png; do
    [[ -f $file ]] || continue
    stem=$(basename "${file%.*}")
    w=${stem%x*}
    h=${stem#*x}
    if ((w >= h && w * h > best_area)); then
      best=$file
      best_area=$((w * h))
    fi
  done
  echo "$best"
}

json_field() {  # json_field FILE KEY: the first "KEY": "value" string in FILE (enough for metadata.json)
  sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n 1
}

mkdir -p "$target"
licenses="$target/LICENSES.md"
{
  echo "# Wallpaper photos: sources and licenses"
  echo
  echo "Fetched by tools/fetch_wallpapers.sh from Debian packages; each package's copyright file is copied here."
  echo "Not part of lightvid: optional training photos. Keep these notices with the files."
} >"$licenses"
count=0

version=$(fetch mate-backgrounds)
cp "$work/root/usr/share/doc/mate-backgrounds/copyright" "$target/copyright-mate-backgrounds.txt"
{
  echo
  echo "## mate-backgrounds $version"
  echo
  echo "Copyright and license (GPL-2+ for every photo here): copyright-mate-backgrounds.txt, section"
  echo "\`Files: nature/...\`."
  echo
} >>"$licenses"
for file in "$work/root/$MATE_DIR"/*.jpg "$work/root/$MATE_DIR"/*.png; do
  [[ -f $file ]] || continue
  name="mate-$(basename "$file")"
  cp "$file" "$target/$name"
  echo "- $name: /$MATE_DIR/$(basename "$file")" >>"$licenses"
  count=$((count + 1))
done

version=$(fetch plasma-workspace-wallpapers)
cp "$work/root/usr/share/doc/plasma-workspace-wallpapers/copyright" "$target/copyright-plasma-workspace-wallpapers.txt"
{
  echo
  echo "## plasma-workspace-wallpapers $version"
  echo
  echo "Copyright: copyright-plasma-workspace-wallpapers.txt; author and license per photo from its metadata.json."
  echo
} >>"$licenses"
for wallpaper in "${PLASMA_PHOTOS[@]}"; do
  folder="$work/root/usr/share/wallpapers/$wallpaper"
  file=$(largest_image "$folder/contents/images")
  if [[ -z $file ]]; then
    echo "plasma-workspace-wallpapers: no image for $wallpaper, skipped" >&2
    continue
  fi
  extension=${file##*.}
  name="plasma-$wallpaper.$extension"
  cp "$file" "$target/$name"
  metadata="$folder/metadata.json"
  author=$(json_field "$metadata" Name)
  license=$(json_field "$metadata" License)
  echo "- $name: /usr/share/wallpapers/$wallpaper/contents/images/$(basename "$file"), by ${author:-?}, ${license:-?}" \
    >>"$licenses"
  count=$((count + 1))
done

echo "$count photos in $target (sources and licenses: $licenses)"
