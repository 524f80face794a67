#pragma once
// <mpi.h> for the dist sources, when tapegrad is built with MPI; the C API
// only (the C++ bindings are deprecated and slow to compile).
#include "tapegrad/error.hpp"
#ifdef TAPEGRAD_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif
