"""The identifiers beyond the paper's seven: dates, ages of 90 and over, record, account, certificate and vehicle
numbers, workplaces, IPs and URLs; and the look-alikes that are none of them."""
import pytest

from deid.detectors.identifiers import luhn_valid, vin_valid


def found(analyze, text, entity_type):
    return [t for typ, t, _ in analyze(text) if typ == entity_type]


@pytest.mark.parametrize("text, expected", [
    ("入院日期：2023年3月15日", ["2023年3月15日"]),
    ("于2023-03-15行手术", ["2023-03-15"]),
    ("2023.3.15复查", ["2023.3.15"]),
    ("报告日期2023/03/15", ["2023/03/15"]),
    ("采样日期：20230315", ["20230315"]),
    ("2023年3月起出现咳嗽", ["2023年3月"]),
    ("3月15日晨起头晕", ["3月15日"]),
    ("二〇二三年三月十五日入院", ["二〇二三年三月十五日"]),
    ("23年3月5日外院就诊", ["23年3月5日"]),
    ("入院时间：2023-03-15 14:30", ["2023-03-15 14:30"]),
    ("于2023年3月15日10时30分送检", ["2023年3月15日10时30分"]),
    ("今年3月15日来诊，去年10月5日手术", ["3月15日", "10月5日"]),
    ("2023年03月15号出院", ["2023年03月15号"]),
    # as real notes write them (cEHRNER): lists and ranges, a full stop before, a dot year-month, no year
    ("于2011.3.20-2011.7.20行xelox方案", ["2011.3.20", "2011.7.20"]),
    ("末次2010.10.26.2010.11.23出现脓肿", ["2010.10.26", "2010.11.23"]),
    ("2012-4-25/2012-5-24行健择方案", ["2012-4-25", "2012-5-24"]),
    ("之后行放疗.2004年9月份开始", ["2004年9月"]),
    ("患者2015.12无意中发现", ["2015.12"]),
    ("2012-08-07至11-13行xelox方案", ["2012-08-07", "11-13"]),
    ("03.14予腹腔灌注，05.19、05.22予", ["03.14", "05.19", "05.22"]),
    ("16-12-26行雷替曲塞", ["16-12-26"]),
    ("2012年9月21肝数个低密度灶", ["2012年9月21"]),
    ("至27日患者腹痛", ["27日"]),
])
def test_dates_in_every_written_form(analyze, text, expected):
    assert found(analyze, text, "DATE") == expected


@pytest.mark.parametrize("text", [
    "术后第3天，体温正常。", "3天前无诱因出现腹痛，2周后复查。", "口服2-3次/日，每次1.5-2.0mg。",
    "肿块约1.5-2.0cm。", "pH 7.35-7.45。", "血压120/80mmHg。", "比例1/2。", "14:30查房。", "软件版本v2.3.1。",
    "高血压病史10年。", "2023年体检。", "孕12周。", "WBC 10.5×10^9/L。", "2019-2020年间多次住院。",
    "ca125 2012.7u/ml。", "afp:(12.14)", "cea为10.5，复查", "化疗10-12次。", "距肛门10-12cm。", "连5日，近4日加重。",
    "入院27日前", "3月前出现腹痛，1月余。", "版本2023.3.15.1。",
])
def test_no_date_in_relative_times_doses_ranges_and_values(analyze, text):
    assert found(analyze, text, "DATE") == []


def test_birth_date_inside_an_id_number_stays_inside_it(analyze):
    spans = analyze("身份证号：11010519491231002X。")
    assert [(t, s) for t, s, _ in spans] == [("ID_NUMBER", "11010519491231002X")]


@pytest.mark.parametrize("text, expected", [
    ("患者，男，93岁。", ["93岁"]), ("九十三岁老人", ["九十三岁"]), ("年龄：95", ["95"]),
    ("101周岁", ["101周岁"]), ("一百零一岁", ["一百零一岁"]),
])
def test_ages_of_90_and_over(analyze, text, expected):
    assert found(analyze, text, "AGE") == expected


@pytest.mark.parametrize("text", ["患者，男，52岁。", "89岁", "年龄：45", "八十九岁", "术后90天"])
def test_ages_under_90_are_not_masked(analyze, text):
    assert found(analyze, text, "AGE") == []


def test_a_birth_year_that_makes_90(pipeline):
    from datetime import date
    for text in ("1930年出生。", "患者生于1930年，", "出生于1930年"):   # a year after 生于 is no birthplace
        spans = pipeline.process(text, note_date=date(2023, 3, 15)).spans
        assert [(s.entity_type.value, s.text) for s in spans] == [("AGE", "1930")]
    assert pipeline.process("1950年出生。", note_date=date(2023, 3, 15)).spans == []


@pytest.mark.parametrize("text, expected", [
    ("住院号：ZY2023001234", ["ZY2023001234"]), ("门诊号MZ-88812", ["MZ-88812"]), ("病案号：456789", ["456789"]),
    ("急诊号 J20230001", ["J20230001"]), ("病理号：P23-04567", ["P23-04567"]), ("检查号：CT230315001", ["CT230315001"]),
    ("医保卡号：1234 5678 9012", ["1234 5678 9012"]), ("社保卡号为A12345678", ["A12345678"]),
    ("ID号：0012345678", ["0012345678"]), ("起搏器序列号：PJN123456S", ["PJN123456S"]),
])
def test_record_numbers_after_their_cues(analyze, text, expected):
    assert found(analyze, text, "RECORD_ID") == expected


def test_a_record_number_never_swallows_a_date_or_a_phone(analyze):
    spans = analyze("住院号：123456 2023-03-15入院，住院号：ZY001 13812345678")
    assert [(t, s) for t, s, _ in spans] == [("RECORD_ID", "123456"), ("DATE", "2023-03-15"), ("RECORD_ID", "ZY001"),
                                             ("CONTACT", "13812345678")]


def test_bank_cards_and_accounts(analyze):
    card = "6222021234567890128"
    assert luhn_valid(card)
    assert found(analyze, f"银行卡号：{card}", "ACCOUNT") == [card]
    assert found(analyze, "家属账号 6222 0212 3456 7890 128", "ACCOUNT") == ["6222 0212 3456 7890 128"]
    assert found(analyze, f"退款至{card}。", "ACCOUNT") == [card]          # UnionPay 62 with a valid Luhn digit
    assert found(analyze, "退款至6222021234567890127。", "ACCOUNT") == []   # no cue and a wrong Luhn digit


@pytest.mark.parametrize("text, expected", [
    ("护照号：E12345678", ["E12345678"]), ("持G87654321护照入境", ["G87654321"]),
    ("港澳通行证：C12345678", ["C12345678"]),
    ("军官证：军字第1234567号", ["军字第1234567号"]), ("台胞证号码：12345678", ["12345678"]),
    ("医师执业证书编码：110110000012345", ["110110000012345"]),
    ("港澳居民来往内地通行证：H12345678", ["H12345678"]), ("德国 护照号：C01X00T47", ["C01X00T47"]),
    ("法国 护照号：12AB34567", ["12AB34567"]), ("护照号：72 1234567", ["72 1234567"]),
])
def test_certificates(analyze, text, expected):
    assert found(analyze, text, "CERTIFICATE") == expected


def test_plates_and_vins(analyze):
    assert found(analyze, "车牌浙A·12345被撞", "VEHICLE") == ["浙A·12345"]
    assert found(analyze, "驾驶京AD12345新能源车", "VEHICLE") == ["京AD12345"]
    assert found(analyze, "粤B12345，", "VEHICLE") == ["粤B12345"]
    vin = "1M8GDM9AXKP042788"
    assert vin_valid(vin)
    assert found(analyze, f"车架号{vin}", "VEHICLE") == [vin]
    assert found(analyze, "车架号1M8GDM9A1KP042788", "VEHICLE") == []   # wrong check digit, no cue for VINs
    assert found(analyze, "B超示肝大，CT示正常。", "VEHICLE") == []


@pytest.mark.parametrize("text, expected", [
    ("曾在杭州市第一中学任教", ["杭州市第一中学"]),
    ("工作单位：浙江海正药业股份有限公司", ["浙江海正药业股份有限公司"]),
    ("就职于阿里巴巴集团，"
     "", ["阿里巴巴集团"]), ("患者为浙江大学学生", ["浙江大学"]), ("红星机械厂退休", ["红星机械厂"]),
])
def test_workplaces(analyze, text, expected):
    assert found(analyze, text, "WORKPLACE") == expected


@pytest.mark.parametrize("text", [
    "都在为平局冷门早做铺垫。", "这使得印度在全球海军部队当中排名第五位。", "副部长在谈及几大制度及政府保障工作时",
    "现住杭州市，在家休养。",
])
def test_no_workplace_where_no_one_works(analyze, text):
    assert found(analyze, text, "WORKPLACE") == []


@pytest.mark.parametrize("text, "
                         "workplace", [("患者毕业于河南大学", "河南大学"), ("患者任职于忻州市公安局", "忻州市公安局")])
def test_the_verb_after_a_cue_is_no_name(analyze, text, workplace):
    assert [(t, s) for t, s, _ in analyze(text)] == [("WORKPLACE", workplace)]


def test_workplace_is_tier_2(analyze):
    assert [tier for typ, _, tier in analyze("工作单位：红星机械厂") if typ == "WORKPLACE"] == [2]


@pytest.mark.parametrize("text, expected", [
    ("登录IP 192.168.10.23", ["192.168.10.23"]), ("来自2001:db8::8a2e:370:7334的访问", ["2001:db8::8a2e:370:7334"]),
    ("报告见https://example.com/report?id=7。", ["https://example.com/report?id=7"]),
    ("详见www.example.org.cn，", ["www.example.org.cn"]),
    ("终端IPv6：fe80::1a2b，", ["fe80::1a2b"]),
])
def test_ips_and_urls_are_contacts(analyze, text, expected):
    assert found(analyze, text, "CONTACT") == expected


@pytest.mark.parametrize("text", ["14:30:45查房", "版本1.2.3", "血钾3.5", "比值1.2.3.4.5", "客户端版本 5.2.0.1"])
def test_times_versions_and_values_are_not_ips(analyze, text):
    assert found(analyze, text, "CONTACT") == []
