// The thread count every parallel kernel uses (OpenMP), set globally by the user.
#pragma once

namespace convcore {

int num_threads();
void set_num_threads(int n);  // n >= 1
int default_num_threads();    // OMP_NUM_THREADS if set, else the CPUs in this process's affinity mask
const char* openmp_runtime();

}  // namespace convcore
