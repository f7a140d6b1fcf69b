// runtime-probe: a CUDA-runtime program (built with nvcc) for the real-GPU check of
// libgpool-cuda.  The runtime reaches the driver through cuGetProcAddress; under the library the
// job's cap is what cudaMemGetInfo reports and where cudaMalloc stops, and kernels still run.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void fill(int *p, size_t n, int v)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        p[i] = v + (int)i;
}

int main()
{
    const size_t chunk = 64u << 20, n = 1u << 20;
    static void *ptrs[8192];
    size_t f = 0, t = 0, got = 0;
    int k = 0, bad = 0;
    cudaError_t e;

    if ((e = cudaMemGetInfo(&f, &t)) != cudaSuccess) {
        printf("cudaMemGetInfo: %s\n", cudaGetErrorName(e));
        return 1;
    }
    printf("cudaMemGetInfo total=%zu free=%zu\n", t, f);
    while (k < 8192) {
        if ((e = cudaMalloc(&ptrs[k], chunk)) != cudaSuccess) {
            printf("cudaMalloc stops with %s after %zu MiB\n", cudaGetErrorName(e), got >> 20);
            cudaGetLastError();
            break;
        }
        got += chunk;
        k++;
    }
    if (k == 0)
        return 1;
    fill<<<(unsigned)(n / 256), 256>>>((int *)ptrs[0], n, 7);
    if ((e = cudaDeviceSynchronize()) != cudaSuccess) {
        printf("kernel: %s\n", cudaGetErrorName(e));
        return 1;
    }
    int *h = (int *)malloc(n * sizeof(int));
    cudaMemcpy(h, ptrs[0], n * sizeof(int), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++)
        bad += h[i] != 7 + (int)i;
    printf("kernel result: %s\n", bad ? "WRONG" : "right");
    void *q = nullptr;
    e = cudaMallocAsync(&q, chunk, 0);
    printf("cudaMallocAsync past the cap: %s\n", cudaGetErrorName(e));
    cudaGetLastError();
    for (int i = 0; i < k; i++)
        cudaFree(ptrs[i]);
    e = cudaMalloc(&ptrs[0], chunk);
    printf("cudaMalloc after freeing: %s\n", cudaGetErrorName(e));
    return bad ? 1 : 0;
}
