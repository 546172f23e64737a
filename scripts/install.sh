#!/usr/bin/env bash
# Installs what weightless-mcu needs on Debian/Ubuntu: the Arm GNU toolchain with
# newlib, QEMU's Arm system emulator, and this package (editable, with test extras).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null \
   || [ ! -e /usr/lib/arm-none-eabi/newlib/librdimon.a ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc make >/dev/null
fi
python3 -m pip install -q -e ".[test]"
echo "installed: $(arm-none-eabi-gcc --version | head -n1); $(qemu-system-arm --version | head -n1); weightless-mcu $(python3 -c 'import weightless_mcu; print(weightless_mcu.__version__)')"
