/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's std for Windows
 * imports ProcessPrng from it for its random numbers (HashMap seeds).
 * Forwarded to advapi32's SystemFunction036 (RtlGenRandom), which Wine has.
 * Built by `cargo xtask ci` with mingw and placed beside the test
 * executables run under Wine; never shipped, never used on real Windows. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
