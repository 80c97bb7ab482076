#ifndef MORAGENT_COPENBLAS_SHIM_H
#define MORAGENT_COPENBLAS_SHIM_H
/* OpenBLAS's CBLAS interface; every matrix product of the engine goes through it. */
#include <cblas.h>
#endif
