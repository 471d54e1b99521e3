/* A stand-in for the NVIDIA driver's libnvidia-ml.so.1: the few NVML entry points
 * nvidia-ml-py calls to read GPU utilisation, with the value taken from a file named by
 * FAKE_NVML_UTILIZATION (one integer, percent; missing file: 0). FAKE_NVML_GPUS sets the
 * number of GPUs (default 1). Signatures as in NVIDIA's nvml.h. */
#include <stdio.h>
#include <stdlib.h>

typedef int nvmlReturn_t;             /* NVML_SUCCESS = 0 */
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;

static struct nvmlDevice_st { int index; } devices[8];

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return 0; }
nvmlReturn_t nvmlInit_v2(void) { return 0; }
nvmlReturn_t nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(nvmlReturn_t result) { (void)result; return "fake NVML error"; }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    const char *n = getenv("FAKE_NVML_GPUS");
    *count = n ? (unsigned int)atoi(n) : 1;
    return 0;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (index >= 8) return 2;        /* NVML_ERROR_INVALID_ARGUMENT */
    devices[index].index = (int)index;
    *device = &devices[index];
    return 0;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    unsigned int value = 0;
    const char *path = getenv("FAKE_NVML_UTILIZATION");
    FILE *f = path ? fopen(path, "r") : NULL;
    (void)device;
    if (f) { if (fscanf(f, "%u", &value) != 1) value = 0; fclose(f); }
    utilization->gpu = value;
    utilization->memory = 0;
    return 0;
}
