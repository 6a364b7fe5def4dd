/* Debian 12's wine (8.0) has no bcryptprimitives.dll, whose ProcessPrng
 * Rust's standard library calls for random bytes since 1.78. This stand-in,
 * built with mingw for the wine test run only (scripts/windows-test.sh),
 * forwards it to RtlGenRandom (advapi32's SystemFunction036), which wine
 * has. Real Windows (10 and later) ships the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
