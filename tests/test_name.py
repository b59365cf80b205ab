import pytest

from deid.synth import vocab


def names(analyze, text):
    return [t for typ, t, _ in analyze(text) if typ == "NAME"]


@pytest.mark.parametrize("text, expected", [
    ("患者张建国，男，52岁。", ["张建国"]),
    ("姓名：司马光  性别：男", ["司马光"]),
    ("家属李秀英（配偶）陪同。", ["李秀英"]),
    ("已向家属赵国交代病情。", ["赵国"]),
    ("其女张丽电话：13812345678", ["张丽"]),
    ("由王五主任查房，指示：继续治疗。", ["王五"]),
    ("今日陈然副主任医师查房。", ["陈然"]),
    ("参加人员：王五、赵六、欧阳娜娜", ["王五", "赵六", "欧阳娜娜"]),
    ("记录者：刘洋", ["刘洋"]),
    ("患者萧晶因胸痛入院。萧晶诉夜间加重。", ["萧晶", "萧晶"]),
    ("医师签名：傅志华  2023-05-12", ["傅志华"]),
])
def test_names_with_context(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.mark.parametrize("text", [
    "患者高血压病史10年，高脂血症5年。",
    "患者诉白细胞偏低，白蛋白32g/L。",
    "予华法林抗凝，阿司匹林100mg qd。",
    "常规心电图示窦性心律，方案不变。",
    "患者于2020年在我院心内科就诊。",
    "石膏固定良好，黄疸较前消退。",
    "严重贫血，程度较前加重，余无特殊。",
])
def test_clinical_words_are_not_names(analyze, text):
    assert names(analyze, text) == []


def test_name_false_positive_rate_on_clinical_lexicon(analyze):
    """Drug names, departments, symptoms, diagnoses and operations in sentences: no names."""
    words = (vocab.DRUGS + vocab.DEPARTMENTS + vocab.SYMPTOMS + vocab.DIAGNOSES + vocab.OPERATIONS
             + vocab.CLINICAL_LEXICON)
    sentences = [f"予{w}治疗。" for w in words] + [f"患者{w}，" for w in words] + [f"{w}。" for w in words]
    false = [s for s in sentences if names(analyze, s)]
    assert len(false) / len(sentences) <= 0.01, false


@pytest.mark.parametrize("text, expected", [
    ("老伴石粉兰今年52岁，", ["石粉兰"]),
    ("专家程阳先生表示", ["程阳"]),
    ("总裁沈东军认为，", ["沈东军"]),
    ("经理赵加说", ["赵加"]),
    ("患者张某，男，45岁", ["张某"]),
    ("家属王某某签字", ["王某某"]),
    ("据报道，米兰·昆德拉的新书出版", ["米兰·昆德拉"]),
    ("这部小说的作者托马斯·怀特曾在伦敦教书", ["托马斯·怀特"]),   # parts joined by the interpunct
    ("俄罗斯教练谢尔盖耶夫认为", ["谢尔盖耶夫"]),                  # 夫, 耶: transliteration characters
    ("主持人王平与DavidSmith对话", ["王平", "DavidSmith"]),         # a capitalised name in Latin letters
    ("麻醉医师：李子  麻醉方式：全麻", ["李子"]),        # a name that is also a word stands after a name field
    ("家具协会副秘书长于秀苏告诉记者", ["于秀苏"]),     # 于 starts a name when a verb of saying follows
    ("当时，于海将那张单据交给了他。", ["于海"]),        # ... or at the head of a clause, ending cleanly
    ("记者：张永和认为，价格会涨。", ["张永和"]),        # 和 is a given name's character where the model says so
    ("俄方代表谢尔久科夫表示，", ["谢尔久科夫"]),        # one character (久) the transliteration table lacks
    ("金融大鳄索罗斯认为，", ["索罗斯"]),               # 索 begins a foreign name, not the word 索条影
    ("主教练杰夫•莫雷尔表示，", ["杰夫•莫雷尔"]),        # the interpunct typed as a bullet
    ("紫砂艺术馆馆长赵明，", ["赵明"]),                   # a job title before the name
    ("创意总监Eric表示", ["Eric"]),                      # a Latin-letter name after a cue
    ("执行董事leo说", ["leo"]),
    ("金石开：建议关注主队的表现。", ["金石开"]),         # a speaker's label heading an interview's line
    ("美国法官阿特金森（martin atkinson）认为", ["阿特金森", "martin atkinson"]),   # and its original spelling
    ("患者张三（CT）示右肺结节", ["张三"]),              # an acronym in brackets is no spelling of the name
])
def test_names_in_prose(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.mark.parametrize("text", [
    "奥沙利铂(艾恒)150mg ivgtt d1",          # a drug brand in brackets after its generic name
    "替吉奥胶囊40mg bid",                    # 吉奥 inside 替吉奥
    "予乐沙定化疗", "口服瑞宁德", "加用阿柏西普", "化疗结束后口服他莫西芬。", "腔静脉旁、隆突前未见肿大淋巴结",
    "左膝疼痛2天", "右髂总动脉闭塞", "肝左叶占位", "两肺上叶条索灶", "胃周小弯侧淋巴结",
    "双肺可闻及湿罗音", "肠鸣音亢进", "高敏肌钙蛋白升高",
    "余同前。", "于睡前服用", "患者于受凉后出现咳嗽", "化疗3程顺利", "于我科住院",
    "孩子白癜风怎么办", "桑坦德主场迎战", "查体：宫高：32cm", "查体：Murphy征阳性，Babinski征阴性",
    # 于 as a preposition at the head of a clause
    "患者于海南旅游时受凉。", "于今晨出现腹痛。", "孩子于海边玩耍后发热", "吻合术。于叒2016-07-20至",
    # field labels are no speakers
    "查体：神清，双肺呼吸音清。", "印象：右肺结节。", "宫颈：光滑", "方案：继续化疗", "谷丙：45", "付款：已交",
    "家族史：无特殊", "过敏史：否认",
    # Latin letters after a cue that are no name; a drug with a placeholder character
    "记录：CT示右肺结节", "考虑患者为iv期胃癌", "于2016-4-8予患者xelox方案化疗", "d1+希罗达叒早2000mg",
])
def test_clinical_and_other_words_are_not_names(analyze, text):
    assert names(analyze, text) == []


def test_ner_tags_do_not_depend_on_the_other_notes_in_a_batch():
    """Padded batches changed a clause's tags with its neighbours (陈旧 a PER token alone, 陈 beside these)."""
    from deid.detectors.base import Document
    from deid.detectors.ner import LacNer
    ner = LacNer()
    text = "两肺多发小结节，部分稍显饱满，仍考虑陈旧灶可能大。"
    alone = Document(text)
    ner.tag_documents([alone])
    parts = ["患者反复咳嗽咳痰十余年加重三天入院既往高血压病史十年规律服药控制可",
             "复查胸部CT示右肺上叶见一结节影边界清楚密度均匀",
             "予抗感染化痰平喘等对症支持治疗后症状明显好转", "今日查房患者精神可饮食睡眠一般大小便正常"]
    others = [Document("，".join(parts)), Document("，".join([parts[3], parts[1], parts[0]])),
              Document("，".join([parts[2], parts[0]])), Document(parts[2])]
    together = Document(text)
    ner.tag_documents([together, *others])
    assert alone.ner == together.ner


@pytest.mark.parametrize("text", [
    "双侧巴彬斯基氏征未引出，霍夫曼征阴性",          # transliteration + 氏征, bare transliteration + 征
    "奥本海姆征阴性，戈登征阴性，查多克征阴性",
    "患者柯氏反射消失，罗氏征阳性",                  # surname + 氏 + head (the model's 罗氏)
    "布鲁津斯基氏征阴性，克尼格氏征阴性",            # X斯基氏征
    "取右侧麦氏切口，逐层进腹，罗氏点压痛",
    "松解粘连后见肠系膜及陶氏腔少许乳头状结节",      # the pouch of Douglas (cEHRNER train)
])
def test_eponyms_are_not_names(analyze, text):
    assert names(analyze, text) == []


@pytest.mark.parametrize("text, expected", [
    ("家属王芳征求意见后同意手术", ["王芳"]),   # 征求 is a verb, not a sign
    ("患者安娜手术顺利", ["安娜"]),             # a bare name before 手术 is a person
    ("患者张三点头示意", ["张三"]),
])
def test_names_before_a_word_that_begins_like_an_eponym_head(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.fixture(scope="module", params=["lac", "trained"])
def analyze_with(request):
    """analyze() with each NER model: the name detector's rules must hold whichever model tags."""
    from deid.config import load_config
    from deid.pipeline import Pipeline
    pipeline = Pipeline(load_config(ner={"model": request.param}))
    return lambda text: [(s.entity_type.value, s.text, s.tier) for s in pipeline.analyze(text)]


@pytest.mark.parametrize("text, expected", [
    ("不过，谢有福也坦言，", ["谢有福"]),                     # 有 and 长 in a given name: the gate lets them through
    ("孙长林说，", ["孙长林"]),
    ("总裁助理孙长林表示，常务副总李明华说", ["孙长林", "李明华"]),   # after compound job titles
    ("（记者胡昌伟通讯员余夕阳）", ["胡昌伟", "余夕阳"]),             # a byline
    ("电视台总经理郭在根对此表示欢迎", ["郭在根"]),            # 在 inside a given name
    ("关于李自成之死，说法很多", ["李自成"]),                 # the particle after the name is not the name's
    ("约翰·史密斯（John Smith）表示", ["约翰·史密斯", "John Smith"]),   # a transliteration and its spelling
    ("游戏设计师Anderson转投他处", ["Anderson"]),             # a capitalised Latin name after a cue
    ("但随着j.罗琳的小说走红", ["j.罗琳"]),                   # an initial before a transliteration
    ("李女士说，", ["李女士"]),                               # a bare surname and a title stand for a person
    ("患者家属孙女士签字", ["孙女士"]),
    ("欧阳先生来电", ["欧阳先生"]),
    ("王芳女士说", ["王芳"]),                                 # a full name before the title: the name alone
    ("李医生查体：Murphy征阳性", ["李医生"]),                 # ... and a Latin eponym is no name
    ("书写者：和阳  2018.1.1", ["和阳"]),                     # 和 after a field label's colon is a surname
])
def test_names_in_prose_with_either_model(analyze_with, text, expected):
    assert names(analyze_with, text) == expected


@pytest.mark.parametrize("text", [
    "陶瑟征阳性，夏科氏三联征",             # a surname-led name before a sign (…征) is an eponym
    "患者高敏反应，全般情况可",             # clinical words the vocabulary lacks
    "左眉上方见伤口，右颊肿胀",             # a side and a body part
    "向医生反映后，语文老师说",             # a function word or a word's last character before a title
    "2013-4入组帕尼单抗,",                  # a transliteration that begins a drug's name
    "她去问班上的老师和同学，",             # 和 right after a cue word is a conjunction
])
def test_not_names_with_either_model(analyze_with, text):
    assert names(analyze_with, text) == []


@pytest.mark.parametrize("text, expected", [
    ("教练说里德和邓恩都已伤愈", ["里德", "邓恩"]),          # a transliteration ending in 德; an adverb after
    ("市场总监贝克林（beckling）表示，", ["贝克林", "beckling"]),   # ... and one its spelling follows (林)
    ("战队选手GRUBBY也来了", ["GRUBBY"]),                     # a Latin name in capitals the model calls a person
    ("客户范某留在商场的钱包", ["范某"]),                      # X某 before a verb, then an organisation: a person
    ("江苏某律师事务所的律师说", []),                          # X某 inside an organisation's name: none
    ("地产经纪公司总经理杨少锋表示", ["杨少锋"]),              # a role after an organisation's name: not the name
    ("患者行PICC置管，ECMO支持", []),                          # acronyms in capitals stay acronyms
    ("留学生maria说，她很想家", ["maria"]),                    # a lower-case Latin name before a verb of saying
    ("患者dixon术后3天，Miles术后", []),                        # a Latin name before any eponym head: a procedure
    ("本轮阿森纳、桑德兰、斯托克均告负", []),                  # in a list with clubs the model tags: a club
    ("他在加利福尼亚州阿纳海姆的会议中心演讲", []),            # right after a place: a place
    ("温斯莱特联袂出演", ["温斯莱特"]),                        # 联 of a verb: no club
    ("上轮联赛杯温格就用了新人", ["温格"]),                    # after an organisation: still a person
    ("谢菲尔德将军指挥舰队", ["谢菲尔德"]),                    # 德 ends transliterations ...
    ("口服瑞宁德1片，予阿那曲唑（瑞宁德）治疗", []),           # ... and drugs, which their context tells
    ("听说小朱已经辞职了，老李说", ["小朱", "老李"]),          # a familiar form of address
    ("双乳小叶增生", []),
    ("他和香港的余文乐（听歌）同台，余力为：拍了三年", ["余文乐", "余力为"]),   # 余 as a surname ...
    ("其余未见异常，余无特殊，患者于当地医院就诊", []),                        # ... and as a word
    ("锋线上也有里卡多-富勒这位射手", ["里卡多-富勒"]),        # a hyphen joins a transliteration's parts
    ("总经理寿柏年表示", ["寿柏年"]),                          # a surname of 百家姓 that is also a word (寿)
    ("患者须卧床休息", []),                                    # ... which alone, without the model, is none
    ("近日位于北京怀柔的影城", []),                            # ... nor with one given character (a place)
    ("切尔西联主场迎战", []),                                  # ... of a club's name: a club
])
def test_names_in_prose_with_the_trained_model(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.mark.parametrize("text, expected", [
    ("姓名：透纳  性别：男  年龄：45岁", ["透纳"]),                   # a form field's value, no Chinese surname
    ("书写者：风清扬  上级医师：织田作之助  2017-03-01", ["风清扬", "织田作之助"]),
    ("主治医师：火来胜（医师执业证号：110420000123456）", ["火来胜"]),
    ("医师签名：杰森·瑞特曼\n", ["杰森·瑞特曼"]),                     # parts joined by the interpunct
    ("上级医师：同意目前治疗方案。", []),                              # a sentence after the label, not a value
    ("上级医师：同意。", []),                                         # ... ended by a full stop: the cue rule decides
    ("姓名：不详  性别：女", []),                                      # a word that says the name is unknown
    ("医师签名：阿托品  ", []),                                       # a clinical word
])
def test_a_form_fields_value_is_a_name(analyze, text, expected):
    assert names(analyze, text) == expected


@pytest.mark.parametrize("lexicon", ["lexicons/body_surface_chars.txt", "lexicons/clinical_words_extra.txt",
                                     "lexicons/workplace_endings.txt", "dictionaries/surnames_rare.txt",
                                     "lexicons/field_placeholders.txt"])
def test_the_name_lexicons_enter_the_detector_version(tmp_path, lexicon):
    import shutil

    from deid.detectors.name import NameDetector
    from deid.resources import Resources, resources_dir
    copy = tmp_path / "resources"
    shutil.copytree(resources_dir(), copy)
    with open(copy / lexicon, "a", encoding="utf-8") as f:
        f.write("\n# an edit\n")
    assert NameDetector(resources=Resources(copy)).version != NameDetector().version
