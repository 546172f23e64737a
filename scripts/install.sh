#!/usr/bin/env bash
# Installs what weightless-mcu and its tests need on Debian/Ubuntu: the Arm GNU
# toolchain with newlib, QEMU's Arm system emulator, the host compiler, CMake
# (the example firmware builds with it too) and Chromium (the HTML report is
# checked in it headless), all with apt when missing; then this package
# (editable) with its test extras, which include torch (CPU build) and
# onnxscript for the exporter tests.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib/librdimon.a ] || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v cmake >/dev/null || need+=(cmake)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing with apt: ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m pip install -q -e ".[test]"
echo "installed: $(arm-none-eabi-gcc --version | head -n1); $(qemu-system-arm --version | head -n1); weightless-mcu $(python3 -c 'import weightless_mcu; print(weightless_mcu.__version__)')"
