import torch

from instcolor.inference.hardware import CpuInfo, cpu_info, device_description, parse_cpuinfo

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse avx2 avx512f avx512_vnni
processor\t: 1
model name\t: ignored second entry
flags\t\t: fpu
"""


def test_parse_cpuinfo_reads_the_first_processor():
    name, flags = parse_cpuinfo(CPUINFO)
    assert name == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert {"avx2", "avx512f", "avx512_vnni"} <= flags and "fpu" in flags


def test_native_instruction_sets():
    xeon = CpuInfo("xeon", frozenset({"avx512f", "avx512_vnni"}))
    assert xeon.int8_dot_product and not xeon.native_bf16
    epyc = CpuInfo("epyc", frozenset({"avx512_bf16", "avx512_vnni"}))
    assert epyc.native_bf16 and epyc.int8_dot_product
    sapphire = CpuInfo("spr", frozenset({"amx_bf16", "amx_int8", "amx_tile"}))
    assert sapphire.native_bf16 and sapphire.int8_dot_product
    old = CpuInfo("old", frozenset({"avx2"}))
    assert not old.native_bf16 and not old.int8_dot_product
    assert old.signature() != xeon.signature()


def test_this_machine_and_device_description():
    info = cpu_info()
    assert info.model_name and info.threads == torch.get_num_threads()
    described = device_description("cpu")
    assert described["type"] == "cpu" and described["model_name"] == info.model_name
    assert set(described["flags"]) <= set(info.flags)
