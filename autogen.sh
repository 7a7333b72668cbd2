#!/bin/sh
# Regenerates the build system from configure.ac and the Makemodule.am files.
set -e
cd "$(dirname "$0")"
autoreconf -fi
# Autoconf's tests clean up with "rm -f core ...", meant for a core dump of
# a crashed test program; here core/ is a source directory, so an in-tree
# ./configure printed "rm: cannot remove 'core': Is a directory" after every
# test, and its exit trap, chained with &&, then left confdefs.h behind.
sed -i -e 's/rm -f core \*\.core/rm -f *.core/' -e 's/rm -f core /rm -f /' configure
