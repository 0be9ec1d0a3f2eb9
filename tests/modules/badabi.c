/* A module built for an ABI major this core does not have: the loader must
 * refuse it with one clear line. Written by hand instead of PETREL_MODULE()
 * precisely to get the version wrong. */
#include <petrel/module.h>

PETREL_EXPORT extern const struct petrel_module petrel_module_descriptor;
PETREL_EXPORT const struct petrel_module petrel_module_descriptor = {
    .abi_major = PETREL_ABI_MAJOR + 98,
    .abi_minor = 0,
    .size = sizeof(struct petrel_module),
    .signature = PETREL_ABI_SIGNATURE,
    .name = "badabi",
    .version = "0",
};
