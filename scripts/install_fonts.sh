#!/usr/bin/env bash
# The data-preparation step of the realistic synthetic data (Debian/Ubuntu, as root): free font families for
# the synthetic words (`font_dirs: [system]`), free wallpaper photographs for their backgrounds
# (`background_dirs: [/usr/share/backgrounds]`) and the system dictionary (`words_file: /usr/share/dict/words`).
# The tests need none of it: they render with Pillow's bundled font and drawn backgrounds.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  fonts-noto-core fonts-dejavu-core fonts-liberation2 fonts-roboto fonts-open-sans fonts-lato \
  fonts-freefont-ttf fonts-urw-base35 fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell \
  fonts-linuxlibertine fonts-firacode fonts-comic-neue fonts-texgyre fonts-sil-gentium fonts-sil-andika \
  fonts-adf-accanthis fonts-quicksand fonts-yanone-kaffeesatz fonts-jetbrains-mono fonts-hack \
  fonts-inconsolata fonts-ebgaramond fonts-paratype fonts-oxygen fonts-league-spartan fonts-bebas-neue \
  fonts-dancingscript fonts-croscore fonts-adf-gillius fonts-adf-universalis fonts-go \
  mate-backgrounds gnome-backgrounds ukui-wallpapers lomiri-wallpapers wamerican
