import pytest

from deid.detectors.address import AddressDetector
from deid.detectors.base import Document

D = AddressDetector()


def found(text):
    return [(s.text, s.tier) for s in D.detect(Document(text))]


@pytest.mark.parametrize("text, expected", [
    ("住北京市海淀区中关村大街27号。", [("北京市海淀区中关村大街27号", 1)]),
    ("现住址：上海市浦东新区张江镇碧波路690号3号楼2单元501室，"
     "", [("上海市浦东新区张江镇碧波路690号3号楼2单元501室", 1)]),
    ("家住幸福小区5栋302，", [("幸福小区5栋302", 1)]),
    ("四川省成都市武侯区人民南路四段12号", [("四川省成都市武侯区人民南路四段12号", 1)]),
    ("北京市朝阳区和平里北街5号", [("北京市朝阳区和平里北街5号", 1)]),
    ("广东省深圳市南山区粤海街道科技园社区", [("广东省深圳市南山区粤海街道科技园社区", 1)]),
    ("籍贯：河北省石家庄市。", [("河北省石家庄市", 2)]),
    ("患者为湖南长沙人，", [("湖南长沙", 2)]),
    ("于2020年在湖北省武汉市江汉区行手术", [("湖北省武汉市江汉区", 2)]),
])
def test_addresses_and_granularity_tier(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "长春西汀注射液", "予长春新碱化疗", "病房东区3床", "住院期间血压稳定", "左侧第5肋骨骨折", "门诊随访",
])
def test_hard_negatives(text):
    assert found(text) == []


def test_address_does_not_swallow_clinical_text():
    (text, _), = found("河北省石家庄市行腰椎后路减压术")
    assert text == "河北省石家庄市"


def test_admin_parts_record_division_levels():
    span, = D.detect(Document("住北京市海淀区中关村大街27号"))
    assert [lvl for _, lvl in span.attrs["admin_parts"]] == [1, 3]


def test_address_runs_to_the_end_of_the_phrase():
    # components with no suffix, numbered sub-areas, dash and underscore forms, rooms written as 房 or bare
    assert found("现住杭州市下城区朝晖五区40-5-594，") == [("杭州市下城区朝晖五区40-5-594", 1)]
    assert found("家住德信早城七幢三单元，") == [("德信早城七幢三单元", 1)]
    assert found("现住双滦区双塔山镇下店子村。") == [("双滦区双塔山镇下店子村", 1)]
    assert found("住址：江干区丽江小区13幢6单元1341房；") == [("江干区丽江小区13幢6单元1341房", 1)]
    assert found("家住甘家边东995号_金港科创中心_综合楼13楼684室，"
                 "") == [("甘家边东995号_金港科创中心_综合楼13楼684室", 1)]
    assert found("现住金华义乌市城北路M511号东昌汽车销售公司，") == [("金华义乌市城北路M511号东昌汽车销售公司", 1)]


@pytest.mark.parametrize("text, expected", [
    ("姬尧村二队99号", "姬尧村二队99号"),                                # a village group with a house number
    ("患者于今日下午在临海大道湖景国际12号楼2门附近被撞伤。", "临海大道湖景国际12号楼2门"),
    ("救护车从江口街道欧凯超市接回，", "江口街道欧凯超市"),
    ("患者于今日下午在林之语疏桐苑3_6_2101附近被撞伤。", "林之语疏桐苑3_6_2101"),
])
def test_address_without_division_or_cue(text, expected):
    assert [t for t, _ in found(text)] == [expected]


def test_intersections_and_landmarks_stay_inside_the_phrase():
    assert found("现住之江东路与通盛盛路交汇处宋都阳光国际，") == [("之江东路与通盛盛路交汇处宋都阳光国际", 1)]
    assert found("现住瓯北镇双塔路保一大厦对面_五星小区，") == [("瓯北镇双塔路保一大厦对面_五星小区", 1)]


def test_native_place_at_the_head_of_a_note():
    assert found("患者，女，40岁，阳光小区2期3栋3单元502人，因胸痛入院。") == [("阳光小区2期3栋3单元502", 1)]
    assert found("患者，男，56岁，浙江省德清县钟管镇人，") == [("浙江省德清县钟管镇", 1)]


@pytest.mark.parametrize("text, expected", [
    ("患者为湖北省武汉市江汉区退休工人。", [("湖北省武汉市江汉区", 2)]),   # a county, then words: no more address
    ("家住本地，", []), ("现住院治疗", []),                                 # a cue and a word are not an address
    ("16日照片示右肺结节", []),                                              # a date, not 日照
    ("予长春胺缓释胶囊口服", []),                                            # a drug, not 长春
    ("9个月前开始口服瑞宁德。", []),                                         # a drug after a treatment verb, not 宁德
    ("现住北京市朝阳区幸福小区3号楼，因腹痛就诊", [("北京市朝阳区幸福小区3号楼", 1)]),
    ("家住枫林街道徐家社区卫生服务中心2019-05-20复查", [("枫林街道徐家社区卫生服务中心", 1)]),   # a full date ends it
])
def test_address_stops_at_clinical_words(text, expected):
    assert found(text) == expected


def test_generalize_keeps_only_divisions_at_or_above_county():
    from deid.config import load_config
    from deid.masking import Masker, load_policies
    masker = Masker(load_policies(load_config().policies_path))
    text = "现住杭州市下城区朝晖五区40-5-594，"
    spans = D.detect(Document(text))
    (start, end), = masker.masked_intervals(spans, 1)
    assert text[:start].endswith("杭州市下城区") and text[start:end] == "朝晖五区40-5-594"
    assert masker.mask(text, spans, 1).text == "现住杭州市下城区〔地址〕，"


@pytest.mark.parametrize("text, kept", [
    ("出生于浙江省温州市温州大道3346号，", "浙江省温州市"),          # 温州 begins a road: not kept as a division
    ("救护车从拱墅区湖州街656号接回，", "拱墅区"),
    ("浙江省宁波市江北区宁波利星汽车服务有限公司", "浙江省宁波市江北区"),   # no city after a county
])
def test_level_1_keeps_only_real_divisions(text, kept):
    from deid.config import load_config
    from deid.masking import Masker, load_policies
    masker = Masker(load_policies(load_config().policies_path))
    span, = D.detect(Document(text))
    (start, _end), = masker.masked_intervals([span], 1)
    assert text[span.start:start] == kept


@pytest.mark.parametrize("text, expected", [
    ("家住建设路12号大华锁行3楼，", "建设路12号大华锁行3楼"),           # 行 ends a clause, but here a shop
    ("住址：文一路5号海天生活区；", "文一路5号海天生活区"),                 # 生活 is narrative, 生活区 a place
    ("现住城东新村四季青苑3幢2单元，", "城东新村四季青苑3幢2单元"),         # a herb's name inside a community's
    ("家住金银花映月2203，", "金银花映月2203"),                             # ... or a name closed by a room number
    ("住址：解放路258号建行；", "解放路258号建行"),                           # 行 of a bank's short name
])
def test_a_stop_word_inside_a_place_name_does_not_end_the_address(text, expected):
    assert [t for t, _ in found(text)] == [expected]


def test_a_stop_word_before_words_that_are_no_place_still_ends_it():
    assert [t for t, _ in found("家住金桂园小区，在家务农。")] == ["金桂园小区"]
    assert [t for t, _ in found("现住金桂园小区在家务农")] == ["金桂园小区"]


@pytest.mark.parametrize("text, expected", [
    ("救护车从绿洲花语12幢3单元1802接回，", "绿洲花语12幢3单元1802"),      # a name with no place ending
    ("患者于今日下午在西溪4区12-3-501附近被撞伤。", "西溪4区12-3-501"),
    ("救护车从东湖花苑8-1602接回，", "东湖花苑8-1602"),
    ("救护车从银泰名品六楼1208号接回，", "银泰名品六楼1208号"),
    ("救护车从文三路478华星科技大厦接回，", "文三路478华星科技大厦"),    # a road with a bare house number
    ("救护车从香樟西大道1404华联超市接回，", "香樟西大道1404华联超市"),  # a road named after a plant
    ("救护车从滨江银泰城5F1203接回，", "滨江银泰城5F1203"),              # a floor written F, then a room
    ("现住双塔路88、90号，", "双塔路88、90号"),                          # numbers in a list
    ("现住开元路7号华联商厦3---12号，", "开元路7号华联商厦3---12号"),    # a run of dashes
])
def test_buildings_and_numbers_open_an_address_without_a_cue(text, expected):
    assert [t for t, _ in found(text)] == [expected]


@pytest.mark.parametrize("text", [
    "复查日期2023-05-17血常规正常", "尿量1200-1800ml", "建立静脉通路2条", "静脉通路16G留置针", "环路3圈",
    "转入我院3楼病房", "冠脉搭桥术后桥血管通路12支通畅",
])
def test_dates_ranges_and_pathways_are_not_addresses(text):
    assert found(text) == []


def test_a_building_inside_an_institution_is_an_address():
    assert ("5号楼3楼", 1) in found("住址：滨江区第二医院5号楼3楼")
    assert ("住院部12楼", 1) in found("救护车从县人民医院住院部12楼接回，")


def test_a_named_place_after_a_bare_county_is_part_of_the_address():
    assert found("杭州市西湖区明珠眼镜店") == [("杭州市西湖区明珠眼镜店", 1)]
    assert found("湖北省武汉市江汉区退休工人") == [("湖北省武汉市江汉区", 2)]


def test_a_division_name_beginning_a_place_is_not_kept_by_generalize():
    from deid.config import load_config
    from deid.masking import Masker, load_policies
    masker = Masker(load_policies(load_config().policies_path))
    for text, kept in [("现住温州经济技术开发区滨海二道8号", ""), ("家住浙江省浙江师范大学宿舍", "浙江省"),
                       ("住址：朝阳西路88号", ""), ("现住平湖镇河南村5组", ""),
                       ("现住安徽省宿州市祁县镇中心街，", "安徽省宿州市"),   # a town named after a county
                       ("住址：宁波市鄞州区鄞县大道1299号", "宁波市鄞州区")]:
        span, = D.detect(Document(text))
        (start, _end), = masker.masked_intervals([span], 1)
        assert text[span.start:start] == kept, text


@pytest.mark.parametrize("text", [
    "一般补牙需要100-400元/颗", "人工晶体价格有480-8960这样", "血管瘤是发生于血管组织的良性肿瘤",
    "上海失眠的症状那里治疗好？",
])
def test_prices_and_clinical_prose_are_not_addresses(text):
    assert all(t in ("上海",) for t, _ in found(text))


def test_lists_of_numbered_parts_and_wards_inside_an_institution():
    assert found("家住飞云江路12号华联大厦东楼18F、21F，") == [("飞云江路12号华联大厦东楼18F、21F", 1)]
    assert ("住院部16层", 1) in found("住址：市中心医院住院部16层；")
    assert found("现住杭州市、宁波市一带") == [("杭州市", 2), ("宁波市", 2)]


def test_a_procedure_after_an_institution_is_not_part_of_the_address():
    text = "9年前于呼和浩特市回民区光明路社区卫生服务中心行腹腔镜胆囊切除术。"
    assert all(not t.endswith("行") for t, _ in found(text))
