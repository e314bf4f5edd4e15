# Finds every external dependency once, with an error that says how to install it.
find_package(Python3 COMPONENTS Interpreter REQUIRED)

# LibTorch, CUDA and the string ABI: only for builds with LibTorch (SMYRF_WITH_TORCH).
if(SMYRF_WITH_TORCH)

if(NOT Torch_DIR AND NOT CMAKE_PREFIX_PATH MATCHES "torch")
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import torch;print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE SMYRF_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "LibTorch not found: 'import torch' failed in ${Python3_EXECUTABLE}. Run scripts/setup.sh (pip install torch).")
  endif()
  list(APPEND CMAKE_PREFIX_PATH ${SMYRF_TORCH_PREFIX})
endif()

# Decide on CUDA before find_package(Torch): a CUDA-enabled wheel makes TorchConfig look for the
# CUDA toolkit, which we only want when we actually build kernels.
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import torch;print(int(torch.backends.cuda.is_built()), torch.version.cuda or '')"
                OUTPUT_VARIABLE _torch_cuda OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(_torch_cuda)
list(GET _torch_cuda 0 SMYRF_TORCH_HAS_CUDA)
set(SMYRF_TORCH_CUDA_VERSION "")
if(SMYRF_TORCH_HAS_CUDA STREQUAL "1")
  list(GET _torch_cuda 1 SMYRF_TORCH_CUDA_VERSION)
endif()
find_program(SMYRF_NVCC nvcc)
set(SMYRF_NVCC_VERSION "")
if(SMYRF_NVCC)
  execute_process(COMMAND ${SMYRF_NVCC} --version OUTPUT_VARIABLE _nvcc_out)
  string(REGEX MATCH "release ([0-9]+\\.[0-9]+)" _ "${_nvcc_out}")
  set(SMYRF_NVCC_VERSION "${CMAKE_MATCH_1}")
endif()
# AUTO builds our kernels only when nvcc and the wheel's CUDA share a major version: kernels built
# by nvcc 13 cannot run against a CUDA 12 wheel's runtime (torch 2.4 is built for CUDA 12.1).
string(REGEX MATCH "^[0-9]+" _nvcc_major "${SMYRF_NVCC_VERSION}")
string(REGEX MATCH "^[0-9]+" _torch_cuda_major "${SMYRF_TORCH_CUDA_VERSION}")
set(SMYRF_CUDA_ENABLED OFF)
if(SMYRF_WITH_CUDA STREQUAL "ON" OR (SMYRF_WITH_CUDA STREQUAL "AUTO" AND SMYRF_NVCC AND SMYRF_TORCH_HAS_CUDA STREQUAL "1"
                                      AND _nvcc_major STREQUAL _torch_cuda_major))
  if(NOT SMYRF_NVCC)
    message(FATAL_ERROR "SMYRF_WITH_CUDA=ON but nvcc was not found on PATH")
  endif()
  set(SMYRF_CUDA_ENABLED ON)
endif()
message(STATUS "smyrf: CUDA kernels ${SMYRF_CUDA_ENABLED} (SMYRF_WITH_CUDA=${SMYRF_WITH_CUDA}, "
               "nvcc='${SMYRF_NVCC}' ${SMYRF_NVCC_VERSION}, torch CUDA=${SMYRF_TORCH_HAS_CUDA} ${SMYRF_TORCH_CUDA_VERSION})")
# TorchConfig of torch < 2.5 requires libnvToolsExt, which CUDA 13 toolkits no longer ship (NVTX
# became the header-only nvtx3): stand an empty target in for it, which links nothing.
if(SMYRF_TORCH_HAS_CUDA STREQUAL "1" AND SMYRF_NVCC)
  get_filename_component(_cuda_root "${SMYRF_NVCC}" DIRECTORY)
  find_library(SMYRF_LIBNVTOOLSEXT nvToolsExt PATHS "${_cuda_root}/../lib64" NO_DEFAULT_PATH)
  if(NOT SMYRF_LIBNVTOOLSEXT AND NOT TARGET CUDA::nvToolsExt)
    add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
    set(LIBNVTOOLSEXT CUDA::nvToolsExt CACHE STRING "libnvToolsExt for torch < 2.5 (absent from CUDA 13: an empty target)")
  endif()
endif()

if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")  # the H100/H200 that are lent; keeps TorchConfig quiet
endif()
find_package(Torch REQUIRED)
# A CUDA-enabled torch wheel links libtorch_cuda, whose NCCL/cuDNN come from the pip 'nvidia'
# packages (found at run time through its $ORIGIN rpath). GNU ld does not follow that rpath at
# link time and may pick an older system NCCL instead, so name those folders explicitly.
set(SMYRF_TORCH_LINK_OPTIONS "")
if(SMYRF_TORCH_HAS_CUDA STREQUAL "1")
  get_filename_component(_torch_pkg "${Torch_DIR}/../../.." ABSOLUTE)
  file(GLOB _nvidia_lib_dirs LIST_DIRECTORIES true "${_torch_pkg}/../nvidia/*/lib")
  foreach(_dir IN LISTS _nvidia_lib_dirs)
    list(APPEND SMYRF_TORCH_LINK_OPTIONS "LINKER:-rpath-link,${_dir}")
  endforeach()
endif()
# Wheels before torch 2.7 are built with libstdc++'s pre-C++11 string ABI (std::string without
# __cxx11). Every object linked with them must use the same ABI, and so must every compiled C++
# library it passes strings to: fmt is then used header-only, GoogleTest is built from the sources
# Debian ships (libgtest-dev), and the benchmarks are off (Debian ships Google Benchmark compiled).
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import torch;print(int(torch.compiled_with_cxx11_abi()))"
                OUTPUT_VARIABLE SMYRF_TORCH_CXX11_ABI OUTPUT_STRIP_TRAILING_WHITESPACE)
set(SMYRF_FMT_TARGET fmt::fmt)
if(SMYRF_TORCH_CXX11_ABI STREQUAL "0")
  message(STATUS "smyrf: this torch uses the pre-C++11 libstdc++ ABI; building with _GLIBCXX_USE_CXX11_ABI=0")
  add_compile_definitions(_GLIBCXX_USE_CXX11_ABI=0)
  set(SMYRF_FMT_TARGET fmt::fmt-header-only)
  if(SMYRF_BUILD_BENCHMARKS)
    message(STATUS "smyrf: benchmarks off (Debian's Google Benchmark is built with the C++11 ABI)")
    set(SMYRF_BUILD_BENCHMARKS OFF)
  endif()
endif()
else()
  set(SMYRF_FMT_TARGET fmt::fmt)
  set(SMYRF_CUDA_ENABLED OFF)
  set(SMYRF_TORCH_CXX11_ABI 1)
endif()
find_package(nlohmann_json 3.9 REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(fmt REQUIRED)
# at::parallel_for is an inline template around `#pragma omp parallel`: without OpenMP our own
# kernels would run on one thread. (libgomp.so.1 resolves once per process, shared with torch.)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(CLI11 CONFIG REQUIRED)
if(SMYRF_BUILD_TESTS AND SMYRF_TORCH_CXX11_ABI STREQUAL "0")
  if(NOT EXISTS /usr/src/googletest/CMakeLists.txt)
    message(FATAL_ERROR "torch with the pre-C++11 ABI needs GoogleTest built from source: apt-get install libgtest-dev")
  endif()
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  add_subdirectory(/usr/src/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest)  # GoogleTest >= 1.11 defines the namespaced names itself
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
elseif(SMYRF_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(SMYRF_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()
