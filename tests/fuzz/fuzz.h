/* fuzz.h: every harness defines this, as libFuzzer expects. */
#ifndef INGESTFS_FUZZ_H
#define INGESTFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
