#!/bin/sh
# Regenerates the build system from configure.ac and the Makemodule.am files.
set -e
cd "$(dirname "$0")"
autoreconf -fi
