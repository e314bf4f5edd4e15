# Every program and shared library of ours lists the system libstdc++ first among the libraries it
# needs, so that its C++ standard library references bind to libstdc++ whatever a torch build exports.
#
# Why: torch wheels are built against an old libstdc++ and link the newer parts they use
# (std::filesystem, exception_ptr and more: 142 std::filesystem symbols in torch 2.15) statically
# into libtorch_cpu.so, which then exports them. The dynamic linker looks a symbol up in load order
# (the program, then its DT_NEEDED libraries breadth first), and symbol versions do not stop it:
# libtorch's copies are unversioned, and glibc accepts an unversioned definition for a versioned
# reference. With the default link line (torch libraries first, libstdc++ appended by the compiler
# driver) our calls went to libtorch's copies, built from other headers than ours; on a GPU
# machine's torch 2.11 `smyrf` crashed in std::filesystem::remove_all.
#
# With libstdc++ first in DT_NEEDED, libstdc++ precedes every torch library in the global lookup
# scope: our references bind to it, and so do libtorch's own references to its exported copies.
# That is the same binding as LD_PRELOAD of libstdc++ gives, and it is sound in the direction
# libstdc++ guarantees: code built against older headers (torch's) running on a newer libstdc++.
# The alternatives were weighed and rejected:
#   - -static-libstdc++ gives the process two C++ runtimes (two sets of exception globals, two
#     std::cout, two emergency pools), with c10::Error thrown by one and caught by the other;
#   - a version script or -Bsymbolic only changes how a library binds its own definitions, not how
#     an undefined reference is looked up.
# --no-as-needed keeps the entry even where the toolchain links with --as-needed by default
# (Ubuntu), and push/pop-state leaves the rest of the link line as it was. The link options come
# before the objects on the link line, so libstdc++ becomes the first DT_NEEDED entry.
#
# tests/test_runtime_bindings.cpp checks the bindings of the running programs (the loader's own
# binding log); scripts/check_torch_versions.sh builds against several torch versions, with this
# off to show the crash and on to show it gone.
option(SMYRF_LIBSTDCXX_FIRST "Link libstdc++ ahead of LibTorch (OFF only to reproduce the std::filesystem crash)" ON)
if(SMYRF_LIBSTDCXX_FIRST)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "SMYRF_LIBSTDCXX_FIRST needs a GNU-style driver (g++ or clang++); set it OFF for ${CMAKE_CXX_COMPILER_ID}")
  endif()
  add_link_options("LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
endif()
